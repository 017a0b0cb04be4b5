"""The model version the producer dedupes against, computed from files and listings only (no model code)."""

from __future__ import annotations

from typing import Any

from catalog_enrich.model_version import configured_model_version
from catalog_enrich.settings import Settings


def producer_model_version(settings: Settings, client: Any) -> str:
    """The model version of the configured base model and adapter, as stored in ``catalog.model_version``."""
    return configured_model_version(settings.base_model, settings.adapter, lambda: client)
