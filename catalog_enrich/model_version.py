"""The model version: one short hash naming the base model, the adapter and the attribute schema.

It is stored with every catalog row and lets the producer skip objects already enriched by the same model.
It is computed from files only (no torch), so the producer can compute it without loading anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

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


def model_version(base: str, adapter_dir: str | None) -> str:
    """The version of (base model, adapter, schema) as a short stable string.

    ``adapter_dir`` is a local directory (a remote adapter is resolved first), so the same adapter
    bytes give the same version wherever they were loaded from.
    """
    parts = [source_identity(base), source_identity(adapter_dir) if adapter_dir else "no-adapter"]
    parts.append(schema_fingerprint())
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]
