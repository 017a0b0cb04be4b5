"""Dropping listed objects the current model has already enriched, one query per listing page."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from db.catalog import enriched_etags
from producer.listing import ListedObject


def drop_enriched(
    session: Session, bucket: str, objects: Sequence[ListedObject], model_version: str
) -> list[ListedObject]:
    """The objects of ``bucket`` not yet enriched by ``model_version`` with their current ETag, in order.

    An object whose image was replaced since (new ETag) or enriched by another model version is kept.
    """
    if not objects:
        return []
    enriched = enriched_etags(session, bucket, [obj.key for obj in objects], model_version)
    return [obj for obj in objects if (obj.key, obj.etag) not in enriched]
