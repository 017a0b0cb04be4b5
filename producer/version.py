"""The model version the producer dedupes against, computed from files and listings only (no model code)."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from catalog_enrich.model_version import model_version
from catalog_enrich.settings import Settings


def remote_adapter_identity(client: Any, uri: str) -> str:
    """A stable name for the adapter at ``s3://bucket/prefix``: the URI and every object's key and ETag.

    Re-uploading any file of the adapter changes its ETag and therefore the version, without downloading
    the adapter here.
    """
    parts = urlsplit(uri)
    bucket, prefix = parts.netloc, parts.path.strip("/") + "/"
    tags = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        tags += [f"{entry['Key']}:{entry['ETag'].strip(chr(34))}" for entry in page.get("Contents", [])]
    return "s3:" + hashlib.sha256("\n".join([uri, *sorted(tags)]).encode()).hexdigest()


def producer_model_version(settings: Settings, client: Any) -> str:
    """The model version of the configured base model and adapter, as stored in ``catalog.model_version``."""
    adapter = settings.adapter
    if adapter is not None and adapter.startswith("s3://"):
        # a name that is not a local folder is hashed as given, so this identity string stands in for it
        adapter = remote_adapter_identity(client, adapter)
    return model_version(settings.base_model, adapter)
