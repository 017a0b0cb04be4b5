"""How workers and beat write log lines: readable text, or one JSON object per line for log collectors.

Both formats show the log context (run, batch, object key; see ``catalog_enrich.log_context``) and mask
the passwords of URLs and ``password=`` parameters in the message (``settings.mask_secrets``), so a
connection string quoted by a driver error never reaches the logs in clear.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from catalog_enrich.log_context import FIELDS, ContextFilter
from catalog_enrich.masking import mask_secrets

#: how each context field is labelled in text lines
_TEXT_LABELS = {"run_id": "run", "batch_id": "batch", "key": "key"}


def context_of(record: logging.LogRecord) -> dict[str, str]:
    """The log context fields set on ``record`` (by ContextFilter or ``extra=``)."""
    return {name: str(value) for name in FIELDS if (value := getattr(record, name, None)) is not None}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [run=... batch=... key=...]: message``, the context part only when set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = context_of(record)
        labels = " ".join(f"{_TEXT_LABELS[name]}={value}" for name, value in context.items())
        record.context = f" [{labels}]" if labels else ""
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the context fields, any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
            **context_of(record),
        }
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = mask_secrets(record.exc_text)
        # ASCII escapes keep each object on one line in any terminal encoding; newlines are escaped too
        return json.dumps(entry, default=str)


def log_handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) writing ``text`` or ``json`` lines with the log context."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(*, log_format: str, level: int | str = logging.INFO) -> None:
    """Send every logger's records through one handler of ``log_format`` at ``level``, replacing the root's."""
    root = logging.getLogger()
    # anything else on the root (an earlier call's handler included) would write each record a second time
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(log_handler(log_format))
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # warnings (Celery's about running as root, libraries' deprecations) become records in the same format
    logging.captureWarnings(True)
