"""Writing enriched attributes into ``catalog`` and asking which images are already enriched.

Batches are delivered at least once, so the same result can arrive twice, and a slow batch of an older run
can finish after a newer run wrote the same image. ``upsert_catalog_rows`` is written for both: a second
copy of a result changes nothing, and a result from an older run never replaces one from a newer run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, any_, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from db.models import ATTRIBUTE_COLUMNS, CatalogRow, EnrichmentRun, clean_text

#: keys per ``= ANY(array)`` query when looking up what is already enriched
LOOKUP_CHUNK = 10_000


@dataclass(frozen=True)
class CatalogResult:
    """One validated model result, ready to store.

    attributes: the validated attributes, keyed by schema field name (all of them).
    raw_output: the model's text as generated, kept for audits.
    etag: the S3 ETag of the image that was enriched.
    model_version, schema_version: what produced the result.
    run_id: the enrichment run the result belongs to.
    attempts: model attempts it took; latency_ms: model time for this image.
    """

    bucket: str
    key: str
    attributes: dict[str, str]
    raw_output: str | None
    etag: str
    model_version: str
    schema_version: str
    run_id: str
    attempts: int = 1
    latency_ms: int | None = None


def _row(result: CatalogResult) -> dict[str, Any]:
    missing = [name for name in ATTRIBUTE_COLUMNS if name not in result.attributes]
    if missing:
        raise ValueError(f"result for s3://{result.bucket}/{result.key} lacks attributes {missing}")
    row = {
        "bucket": result.bucket,
        "key": result.key,
        "attributes": {name: result.attributes[name] for name in ATTRIBUTE_COLUMNS},
        "raw_output": clean_text(result.raw_output),
        "etag": result.etag,
        "model_version": result.model_version,
        "schema_version": result.schema_version,
        "run_id": result.run_id,
        "attempts": result.attempts,
        "latency_ms": result.latency_ms,
    }
    row.update({name: result.attributes[name] for name in ATTRIBUTE_COLUMNS})
    return row


def upsert_catalog_rows(session: Session, results: Iterable[CatalogResult]) -> int:
    """Insert or update one catalog row per result; the number of rows actually written.

    An existing row is replaced only when the incoming result differs in ETag, model version or schema
    version, and its run started no earlier than the run of the stored result.
    """
    # one statement may not touch a row twice; within a call the last result for an image wins
    rows = list({(result.bucket, result.key): _row(result) for result in results}.values())
    if not rows:
        return 0
    table = CatalogRow.__table__
    statement = insert(table).values(rows)
    incoming = statement.excluded
    runs = EnrichmentRun.__table__
    # both run_ids are named as text: SQLAlchemy does not correlate a subquery with the target (or the
    # EXCLUDED row) of an INSERT and would add a cross join with the whole catalog table instead
    incoming_started = select(runs.c.started_at).where(runs.c.id == literal_column("excluded.run_id"))
    # (``table.name`` is the model's own table name, so this text never holds input)
    stored_started = select(runs.c.started_at).where(runs.c.id == literal_column(f"{table.name}.run_id"))
    changed = or_(
        table.c.etag != incoming.etag,
        table.c.model_version != incoming.model_version,
        table.c.schema_version != incoming.schema_version,
    )
    updated = {name: incoming[name] for name in rows[0] if name not in ("bucket", "key")}
    updated["updated_at"] = func.now()
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.bucket, table.c.key],
        set_=updated,
        where=and_(changed, incoming_started.scalar_subquery() >= stored_started.scalar_subquery()),
    ).returning(table.c.key)
    return len(session.execute(statement).all())


def enriched_etags(session: Session, bucket: str, keys: Iterable[str], model_version: str) -> set[tuple[str, str]]:
    """The ``(key, etag)`` pairs among ``keys`` of ``bucket`` already enriched by ``model_version``.

    A listed object whose ``(key, etag)`` is in the result needs no new enrichment; one whose ETag
    changed since (the image was replaced) is not in it.
    """
    table = CatalogRow.__table__
    statement = select(table.c.key, table.c.etag).where(
        table.c.bucket == bindparam("bucket"),
        table.c.model_version == bindparam("model_version"),
        # one array parameter instead of thousands of IN parameters: one plan, one round trip per chunk
        table.c.key == any_(bindparam("keys", type_=ARRAY(Text))),
    )
    found: set[tuple[str, str]] = set()
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) == LOOKUP_CHUNK:
            found.update(_lookup(session, statement, bucket, chunk, model_version))
            chunk = []
    if chunk:
        found.update(_lookup(session, statement, bucket, chunk, model_version))
    return found


def _lookup(session: Session, statement: Any, bucket: str, keys: list[str], model_version: str) -> set[tuple[str, str]]:
    params = {"bucket": bucket, "model_version": model_version, "keys": keys}
    return {(row.key, row.etag) for row in session.execute(statement, params)}
