"""Validating one raw model output against the attribute schema.

``validate_output`` is the only gate between the model and the catalog: what it accepts has every key of
``schema.KEYS`` and nothing else, enum values spelled as in ``field.choices`` and free text that is safe to
store in PostgreSQL and to show in a page. It is pure, never raises on a ``str`` and reads the text once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog_enrich.json_extraction import ExtractionError, extract_object, json_type, shorten
from catalog_enrich.normalization import NormalizationError, match_choice, normalize_text
from catalog_enrich.schema import FIELDS, FIELDS_BY_NAME, KEYS

#: how many offending keys a reason lists before summarizing the rest as a count
MAX_KEYS_NAMED = 5


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one output.

    ok: whether the output may be stored.
    attributes: the canonical attributes, in schema order, when ``ok``; otherwise None.
    reason: a short human-readable explanation when not ``ok``; otherwise None.
    """

    ok: bool
    attributes: dict[str, str] | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data: ``{"ok": true, "attributes": {...}}`` or ``{"ok": false, "reason": "..."}``."""
        if self.ok:
            return {"ok": True, "attributes": dict(self.attributes or {})}
        return {"ok": False, "reason": self.reason}


def rejected(reason: str) -> Verdict:
    """A failing verdict with ``reason``."""
    return Verdict(ok=False, reason=reason)


def validate_output(raw: str) -> Verdict:
    """Extract, check and normalize the attributes in one raw model output."""
    try:
        data = extract_object(raw)
        return Verdict(ok=True, attributes=validate_attributes(data))
    except (ExtractionError, NormalizationError) as error:
        return rejected(str(error))


def validate_attributes(data: Any) -> dict[str, str]:
    """The canonical attributes of a decoded JSON value; raises NormalizationError with the first problem."""
    if not isinstance(data, dict):
        raise NormalizationError(f"top-level JSON value is {json_type(data)}, not an object")
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise NormalizationError(f"missing keys: {_list_keys(missing)}")
    # extra keys are refused rather than dropped: a model that invents keys is not following the prompt,
    # and its other values are not to be trusted either
    unknown = [key for key in data if key not in FIELDS_BY_NAME]
    if unknown:
        raise NormalizationError(f"unknown keys: {_list_keys(unknown)}")
    attributes: dict[str, str] = {}
    for field in FIELDS:
        value = data[field.name]
        if not isinstance(value, str):
            raise NormalizationError(f"{field.name} must be a string, not {json_type(value)}")
        if field.kind == "enum":
            attributes[field.name] = match_choice(value, field)
        else:
            attributes[field.name] = normalize_text(value, field)
    return attributes


def _list_keys(keys: list[str]) -> str:
    """Keys for a reason: schema keys as they are, anything else shortened; at most ``MAX_KEYS_NAMED``."""
    named = [key if key in FIELDS_BY_NAME else shorten(key) for key in keys[:MAX_KEYS_NAMED]]
    more = len(keys) - len(named)
    return ", ".join(named) + (f" and {more} more" if more else "")
