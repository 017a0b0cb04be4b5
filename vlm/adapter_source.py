"""Where a LoRA adapter comes from: a local directory, or an ``s3://bucket/prefix`` URI cached locally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class AdapterNotFoundError(RuntimeError):
    """The adapter location holds no adapter."""


def _download_prefix(uri: str, cache_root: Path, client: Any) -> Path:
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/").rstrip("/")
    listing = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    objects = [obj for page in listing for obj in page.get("Contents", [])]
    if not any(obj["Key"].endswith("adapter_config.json") for obj in objects):
        raise AdapterNotFoundError(f"no adapter_config.json under {uri}; upload the adapter directory there")
    # the cache key includes every ETag, so a re-uploaded adapter is fetched again, never served stale
    tags = sorted(f"{obj['Key']}:{obj['ETag']}" for obj in objects)
    target = cache_root / hashlib.sha256("\n".join([uri, *tags]).encode()).hexdigest()[:16]
    if not (target / "adapter_config.json").is_file():
        partial = target.with_suffix(".partial")
        partial.mkdir(parents=True, exist_ok=True)
        for obj in objects:
            relative = obj["Key"][len(prefix) + 1 :]
            destination = partial / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(destination))
        partial.rename(target)
    return target


def resolve_adapter(location: str, cache_root: Path, s3_client: Callable[[], Any] | None = None) -> Path:
    """A local directory holding the adapter named by ``location`` (downloaded first if remote).

    ``s3_client`` makes the boto3 client for an ``s3://`` location (default: boto3's own configuration).
    """
    if location.startswith("s3://"):
        if s3_client is None:
            import boto3

            return _download_prefix(location, cache_root, boto3.client("s3"))
        return _download_prefix(location, cache_root, s3_client())
    path = Path(location).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise AdapterNotFoundError(f"{path} holds no adapter_config.json; train one with `catalog train`")
    return path
