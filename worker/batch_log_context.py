"""Tagging every log line of a batch task with the run and batch of the message it handles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from catalog_enrich.log_context import log_context


def message_ids(message: Any) -> dict[str, str]:
    """The run and batch ids of a batch message, as far as it has them (a malformed one may have neither)."""
    if not isinstance(message, dict):
        return {}
    return {name: str(message[name]) for name in ("run_id", "batch_id") if message.get(name) is not None}


def in_batch_log_context(task: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Run a bound batch task ``task(self, message)`` inside a log context of the message's run and batch.

    A decorator rather than a block inside the task, so every line the task writes is tagged, its retry
    and failure lines included, however its body changes.
    """

    @functools.wraps(task)
    def tagged(self: Any, message: Any) -> Any:
        with log_context(**message_ids(message)):
            return task(self, message)

    return tagged
