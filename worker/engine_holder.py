"""The one engine of a worker process: loaded on first use, kept for the life of the process.

Loading in the process that runs the tasks (never in a parent that forks) keeps CUDA usable: a child
forked from a parent that touched CUDA cannot initialise it again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from catalog_enrich.settings import Settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_engine: Any = None


def build_engine(settings: Settings) -> Any:
    """Load the configured base model and adapter into an inference engine."""
    import boto3

    from catalog_enrich.model_version import configured_model_version
    from vlm.adapter_source import resolve_adapter
    from vlm.engine import Engine
    from vlm.loading import load_model

    def s3_client() -> Any:
        return boto3.client("s3", **settings.s3.client_kwargs())

    adapter_dir = resolve_adapter(settings.adapter, settings.home / "adapters", s3_client) if settings.adapter else None
    # the version is computed from the configured location exactly as the producer computes it, so the
    # producer's "already enriched by this model" check matches what the workers write
    version = configured_model_version(settings.base_model, settings.adapter, s3_client)
    loaded = load_model(
        settings.base_model,
        adapter_dir,
        quantization=settings.quantization,
        version=version,
        precision=settings.precision,
    )
    log.info(
        "model %s loaded (version %s, %s, %s)", settings.base_model, loaded.version, loaded.quantization, loaded.dtype
    )
    return Engine(loaded, decoding=settings.decoding, max_attempts=settings.max_attempts)


def get_engine(settings: Settings) -> Any:
    """This process's engine, loading it the first time."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = build_engine(settings)
        return _engine
