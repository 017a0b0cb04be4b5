"""Adapters from S3: downloaded once into a cache, and named with the same model version everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_enrich.model_version import configured_model_version
from vlm.adapter_source import AdapterNotFoundError, resolve_adapter

pytestmark = pytest.mark.services


def upload_directory(s3, folder: Path, prefix: str) -> str:
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            s3.client.upload_file(str(file), s3.bucket, f"{prefix}/{file.relative_to(folder)}")
    return f"s3://{s3.bucket}/{prefix}"


def test_remote_adapter_is_downloaded_once_and_versioned_like_the_producer(s3, trained_model, tmp_path):
    uri = upload_directory(s3, trained_model.adapter, "adapters/fashion-v1")
    cache = tmp_path / "cache"
    local = resolve_adapter(uri, cache, lambda: s3.client)
    assert (local / "adapter_config.json").read_bytes() == (trained_model.adapter / "adapter_config.json").read_bytes()
    assert resolve_adapter(uri, cache, lambda: s3.client) == local  # cached: no second download
    first = configured_model_version(str(trained_model.base), uri, lambda: s3.client)
    assert first == configured_model_version(str(trained_model.base), uri, lambda: s3.client)
    # re-uploading a file changes its ETag, hence the version, hence a fresh download
    s3.client.put_object(Bucket=s3.bucket, Key="adapters/fashion-v1/README.md", Body=b"v2 notes")
    assert configured_model_version(str(trained_model.base), uri, lambda: s3.client) != first
    assert resolve_adapter(uri, cache, lambda: s3.client) != local


def test_missing_remote_adapter_says_what_to_do(s3, tmp_path):
    with pytest.raises(AdapterNotFoundError, match=r"no adapter_config\.json"):
        resolve_adapter(f"s3://{s3.bucket}/nothing-here", tmp_path, lambda: s3.client)
