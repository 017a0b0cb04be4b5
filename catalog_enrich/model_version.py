"""The model version: one short hash naming the base model, the adapter and the attribute schema.

It is stored with every catalog row and lets the producer skip objects already enriched by the same model.
It is computed from files only (no torch), so the producer can compute it without loading anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from catalog_enrich.schema import schema_fingerprint

#: files whose bytes identify a model directory; weights are identified by name and size, since
#: hashing 20 GB of safetensors at every start-up would cost minutes for no extra safety in practice
_IDENTITY_FILES = ("config.json", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json")


def _directory_identity(path: Path, digest: hashlib._Hash) -> None:
    for name in _IDENTITY_FILES:
        candidate = path / name
        if candidate.is_file():
            digest.update(name.encode())
            digest.update(candidate.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())


def source_identity(source: str) -> str:
    """A hash naming a model source: a local directory's identity files, or a hub id as given."""
    digest = hashlib.sha256()
    path = Path(source).expanduser()
    if path.is_dir():
        _directory_identity(path, digest)
    else:
        digest.update(source.encode())
    return digest.hexdigest()[:16]


def model_version(base: str, adapter: str | None) -> str:
    """The version of (base model, adapter, schema) as a short stable string.

    ``adapter`` is a local directory (hashed by content) or any other identity string.
    """
    parts = [source_identity(base), source_identity(adapter) if adapter else "no-adapter"]
    parts.append(schema_fingerprint())
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def remote_adapter_identity(client: Any, uri: str) -> str:
    """A stable name for the adapter at ``s3://bucket/prefix``: the URI and every object's key and ETag.

    Re-uploading any file of the adapter changes an ETag and therefore the version, and the producer
    can compute it without downloading the adapter.
    """
    parts = urlsplit(uri)
    bucket, prefix = parts.netloc, parts.path.strip("/") + "/"
    tags = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        tags += [f"{entry['Key']}:{entry['ETag'].strip(chr(34))}" for entry in page.get("Contents", [])]
    return "s3:" + hashlib.sha256("\n".join([uri, *sorted(tags)]).encode()).hexdigest()


def configured_model_version(base: str, adapter: str | None, s3_client: Callable[[], Any]) -> str:
    """The version of the configured base and adapter location, the same for producer and workers.

    ``adapter`` is a local directory or an ``s3://`` URI; ``s3_client`` is called only for the latter.
    """
    if adapter is not None and adapter.startswith("s3://"):
        adapter = remote_adapter_identity(s3_client(), adapter)
    return model_version(base, adapter)
