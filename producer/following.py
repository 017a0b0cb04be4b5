"""Following a run to its end by polling the ledger (the database, not the broker, knows the progress)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.progress import progress_bar
from db.ledger import run_counts
from db.models import FINAL_ITEM_STATUSES
from db.runs import complete_run_if_finished, run_status

#: seconds between two looks at the ledger
POLL_INTERVAL = 1.0

#: run states after which nothing more will happen
ENDED_STATUSES = ("completed", "failed", "cancelled")


@dataclass
class FollowResult:
    """How following ended: the run's last status, its counts, and whether the wait timed out first."""

    status: str
    counts: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False

    def as_dict(self) -> dict[str, object]:
        """The final state as JSON-able values: status, done, failed, dead_lettered, timed_out."""
        names = ("done", "failed", "dead_lettered", "queued")
        return {
            "status": self.status,
            **{name: self.counts.get(name, 0) for name in names},
            "timed_out": self.timed_out,
        }


def _look(sessions: sessionmaker[Session], run_id: str) -> tuple[str, dict[str, int]]:
    """The run's status and counts; completes a run whose items are all final but that nobody completed."""
    with sessions.begin() as session:
        status = run_status(session, run_id) or "missing"
        counts = run_counts(session, run_id)
        unfinished = counts["queued"] + counts["failed"]
        # workers complete runs themselves; this covers a last batch that finished before the run was
        # marked fully sent by a producer that then died
        if status == "running" and unfinished == 0 and complete_run_if_finished(session, run_id):
            status = "completed"
    return status, counts


def follow_run(
    sessions: sessionmaker[Session],
    run_id: str,
    *,
    timeout: float | None = None,
    interval: float = POLL_INTERVAL,
    progress: bool = True,
) -> FollowResult:
    """Poll the run until it ends or ``timeout`` seconds pass, showing final items out of all items."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with progress_bar(desc="enriching", unit=" images", disable=not progress) as bar:
        while True:
            status, counts = _look(sessions, run_id)
            finished = sum(counts[name] for name in FINAL_ITEM_STATUSES)
            bar.total = counts["queued"] + counts["failed"] + finished
            bar.set_postfix(done=counts["done"], failed=counts["failed"], dead=counts["dead_lettered"], refresh=False)
            bar.update(finished - bar.n)
            if status in ENDED_STATUSES or status == "missing":
                return FollowResult(status, counts)
            if deadline is not None and time.monotonic() >= deadline:
                return FollowResult(status, counts, timed_out=True)
            time.sleep(interval)
