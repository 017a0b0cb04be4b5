"""Running scenarios and reporting them: one row per scenario, as a table and as JSON."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from catalog_enrich.reliability.audit import Tally
from catalog_enrich.reliability.harness import Harness
from catalog_enrich.reliability.scenarios import SCENARIOS, Scale, ScenarioResult

log = logging.getLogger(__name__)

COLUMNS = ("items", "enriched", "dead_lettered", "lost", "duplicated", "re_executed", "recovered", "invalid")


def run_scenarios(
    harness: Harness,
    names: Sequence[str],
    scale: Scale,
    on_result: Callable[[ScenarioResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[ScenarioResult]:
    """Run ``names`` in order; a scenario that raises is reported as not completed, and the suite goes on."""
    results = []
    for name in names:
        if on_start is not None:
            on_start(name)
        started = time.monotonic()
        try:
            result = SCENARIOS[name](harness, scale)
        except Exception as error:
            log.error("scenario %s failed: %s", name, traceback.format_exc())
            empty = Tally(0, 0, 0, 0, 0, 0, 0, 0)
            result = ScenarioResult(name, empty, time.monotonic() - started, False, {"error": repr(error)})
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def header() -> str:
    """The table's header line."""
    columns = "".join(f"{column.replace('_', '-'):>14}" for column in COLUMNS)
    return f"{'scenario':<20}{columns}{'seconds':>9}  ok"


def row(result: ScenarioResult) -> str:
    """One table line."""
    figures = result.tally.as_dict()
    cells = "".join(f"{figures[column]:>14}" for column in COLUMNS)
    return f"{result.name:<20}{cells}{result.seconds:>9.0f}  {'yes' if result.passed else 'NO'}"


def write_json(results: Sequence[ScenarioResult], path: Path, extra: dict[str, Any]) -> None:
    """``{"scenarios": [...], ...extra}`` to ``path``."""
    document = {"scenarios": [result.as_dict() for result in results], **extra}
    path.write_text(json.dumps(document, indent=2) + "\n")
