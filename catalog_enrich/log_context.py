"""The run, batch and object key a piece of work is about, attached to every log line it writes.

Code that starts work on a batch or an item opens ``log_context(run_id=..., batch_id=...)``; every record
logged inside the block, by any logger, carries those fields (``ContextFilter`` copies them onto the
record), so log lines about one batch can be found together without each call repeating the ids. The
values live in a context variable: each thread and each task sees only the context it set itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

#: the fields a log context may hold, in the order log lines show them
FIELDS = ("run_id", "batch_id", "key")

_current: ContextVar[Mapping[str, str]] = ContextVar("catalog_log_context", default=MappingProxyType({}))


def current_context() -> Mapping[str, str]:
    """The fields set by the enclosing ``log_context`` blocks (empty outside any)."""
    return _current.get()


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` (run_id, batch_id, key; None values are ignored) to every record logged in the block.

    Blocks nest: an item's ``key`` adds to its batch's ``run_id`` and ``batch_id``.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields {sorted(unknown)}: use {', '.join(FIELDS)}")
    added = {name: str(value) for name, value in fields.items() if value is not None}
    token = _current.set(MappingProxyType({**_current.get(), **added}))
    try:
        yield
    finally:
        _current.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record as attributes (None where unset).

    Installed on handlers, so records of every logger get it; a field already on the record (passed with
    ``extra=``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True
