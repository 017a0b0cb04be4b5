"""A run's progress as the ledger records it: counts per state, finishing rate and time left.

Everything is read from PostgreSQL (Redis and Flower only see messages in flight): the run row holds the
producer's counts, the ledger items hold where each image is, and the ``updated_at`` of the final items
tells how fast the workers have been finishing them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from catalog_enrich.catalog_report import format_table
from catalog_enrich.masking import mask_secrets, mask_url
from db.engine import make_engine
from db.models import FINAL_ITEM_STATUSES, EnrichmentItem, EnrichmentRun

#: runs listed by ``catalog status`` without a run id
RECENT_RUNS = 10

#: the counts the producer stores on the run row
_PRODUCER_COUNTS = ("listed", "skipped", "enqueued")

#: ledger item states counted per run
_ITEM_COUNTS = ("queued", "failed", "dead_lettered", "done")


class LedgerUnavailableError(RuntimeError):
    """The database cannot be reached or lacks the ledger tables; the message is one line of advice."""


def connect_ledger(url: str) -> Engine:
    """An engine for the ledger database, checked to answer; raises LedgerUnavailableError otherwise."""
    engine = make_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM enrichment_runs LIMIT 1"))
    except SQLAlchemyError as error:
        engine.dispose()
        # driver errors span several lines; the first says what went wrong
        lines = str(getattr(error, "orig", None) or error).strip().splitlines()
        cause = mask_secrets(lines[0]) if lines else type(error).__name__
        where = mask_url(url)
        if "enrichment_runs" in cause:
            raise LedgerUnavailableError(f"database {where} has no ledger tables: run `catalog migrate`") from error
        raise LedgerUnavailableError(f"cannot reach database {where}: {cause}") from error
    return engine


@dataclass(frozen=True, kw_only=True)
class RunProgress:
    """Where one run stands.

    listed, skipped, enqueued: the producer's counts. queued, failed, dead_lettered, done: ledger items
    per state now. started_at, finished_at: the run row's times; last_final_at: when the latest item
    reached a final state (None before the first one).
    """

    run_id: str
    status: str
    bucket: str
    prefix: str
    model_version: str
    listed: int
    skipped: int
    enqueued: int
    queued: int
    failed: int
    dead_lettered: int
    done: int
    started_at: datetime
    finished_at: datetime | None
    last_final_at: datetime | None

    @property
    def finished(self) -> int:
        """Items in a final state (done or dead-lettered)."""
        return self.done + self.dead_lettered

    @property
    def remaining(self) -> int:
        """Items still to do: queued, or failed and waiting for ``enqueue --resume``."""
        return self.queued + self.failed

    @property
    def elapsed_seconds(self) -> float | None:
        """Seconds from the start of the run to its latest finished item (None before the first)."""
        if self.last_final_at is None:
            return None
        return max(0.0, (self.last_final_at - self.started_at).total_seconds())

    @property
    def rate(self) -> float | None:
        """Items finished per second over the run so far (None before the first finishes)."""
        elapsed = self.elapsed_seconds
        if elapsed is None or self.finished == 0:
            return None
        # a run finished within one clock tick still finished at some rate; avoid dividing by zero
        return self.finished / max(elapsed, 1e-3)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until every remaining item is final at the current rate (0 when none remain)."""
        if self.remaining == 0:
            return 0.0
        rate = self.rate
        return None if rate is None else self.remaining / rate

    def as_dict(self) -> dict[str, Any]:
        """JSON-able values, including the derived rate, remaining and ETA."""
        values = asdict(self)
        for name in ("started_at", "finished_at", "last_final_at"):
            values[name] = values[name].isoformat() if values[name] else None
        return values | {
            "finished": self.finished,
            "remaining": self.remaining,
            "rate_per_second": self.rate,
            "eta_seconds": self.eta_seconds,
        }


def _progress_query(run_ids: Select) -> Select:
    """Run rows joined with their per-state item counts, for the runs whose ids ``run_ids`` selects."""
    items, runs = EnrichmentItem.__table__, EnrichmentRun.__table__

    def count(status: str) -> Any:
        return func.count().filter(items.c.status == status)

    per_run = (
        select(
            items.c.run_id,
            *(count(status).label(status) for status in _ITEM_COUNTS),
            func.max(items.c.updated_at).filter(items.c.status.in_(FINAL_ITEM_STATUSES)).label("last_final_at"),
        )
        .where(items.c.run_id.in_(run_ids))
        .group_by(items.c.run_id)
        .subquery()
    )
    return (
        select(
            runs.c.id.label("run_id"),
            *(runs.c[name] for name in ("status", "bucket", "prefix", "model_version", *_PRODUCER_COUNTS)),
            *(func.coalesce(per_run.c[name], 0).label(name) for name in _ITEM_COUNTS),
            runs.c.started_at,
            runs.c.finished_at,
            per_run.c.last_final_at,
        )
        .select_from(runs.outerjoin(per_run, per_run.c.run_id == runs.c.id))
        .where(runs.c.id.in_(run_ids))
        .order_by(runs.c.started_at.desc(), runs.c.id)
    )


def load_progress(session: Session, run_id: str) -> RunProgress | None:
    """The progress of run ``run_id``, or None when there is no such run."""
    runs = EnrichmentRun.__table__
    row = session.execute(_progress_query(select(runs.c.id).where(runs.c.id == run_id))).one_or_none()
    return None if row is None else RunProgress(**row._mapping)


def recent_runs(session: Session, limit: int = RECENT_RUNS) -> list[RunProgress]:
    """The progress of the ``limit`` most recently started runs, newest first."""
    runs = EnrichmentRun.__table__
    latest = select(runs.c.id).order_by(runs.c.started_at.desc(), runs.c.id).limit(limit)
    return [RunProgress(**row._mapping) for row in session.execute(_progress_query(latest))]


def format_duration(seconds: float | None) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``12.5s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_rate(rate: float | None) -> str:
    """Items per second with sensible precision; ``-`` when unknown."""
    return "-" if rate is None else f"{rate:.2f}/s"


def format_progress(progress: RunProgress) -> str:
    """One run's progress as aligned ``name: value`` lines."""
    location = f"s3://{progress.bucket}/{progress.prefix}"
    finished = progress.finished_at.isoformat(timespec="seconds") if progress.finished_at else "-"
    lines = {
        "run": progress.run_id,
        "status": progress.status,
        "images": location,
        "model version": progress.model_version,
        "listed": progress.listed,
        "skipped": f"{progress.skipped} (already enriched)",
        "enqueued": progress.enqueued,
        "done": progress.done,
        "dead-lettered": progress.dead_lettered,
        "failed": f"{progress.failed} (retried by `enqueue --resume {progress.run_id}`)",
        "remaining": f"{progress.remaining} (queued + failed)",
        "rate": format_rate(progress.rate),
        "eta": format_duration(progress.eta_seconds) if progress.remaining else "-",
        "started": progress.started_at.isoformat(timespec="seconds"),
        "finished": finished,
    }
    width = max(len(name) for name in lines)
    return "\n".join(f"{name + ':':{width + 1}} {value}" for name, value in lines.items())


def format_runs(runs: list[RunProgress]) -> str:
    """Several runs as one table, newest first."""
    headers = ["run", "status", "started", "enqueued", "done", "dead", "failed", "remaining", "rate", "eta"]
    rows = [
        (
            run.run_id,
            run.status,
            run.started_at.isoformat(timespec="seconds"),
            run.enqueued,
            run.done,
            run.dead_lettered,
            run.failed,
            run.remaining,
            format_rate(run.rate),
            format_duration(run.eta_seconds) if run.remaining else "-",
        )
        for run in runs
    ]
    return format_table(headers, rows)
