"""The reaper: finds runs whose messages the broker lost and sends their unfinished items again.

The ledger in PostgreSQL, not Redis, is the record of what a run must do. A run is stalled when it is fully
sent (``running``), some of its items are not final, none of them changed for a while, and the broker holds
no message at all. Then no worker can ever finish those items, so they are resent exactly as
``enqueue --resume`` does. Resending is idempotent; the conditions only keep it from being wasteful.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.settings import Settings
from db.models import FINAL_ITEM_STATUSES, EnrichmentItem, EnrichmentRun
from producer.backlog import broker_backlog
from producer.resume import resume_run

log = logging.getLogger(__name__)

#: items of a stalled run must have been untouched this long: a batch being recorded right now is not lost
DEFAULT_QUIET = timedelta(seconds=120)

#: an arbitrary constant naming the reaper's advisory lock, so two reapers never resend the same run twice
REAPER_LOCK = 0x63617461  # "cata"


@dataclass
class ReapReport:
    """What one pass did: items resent per run, or why it did nothing."""

    resent: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-able data (a task result, a log line)."""
        return {"resent": self.resent, "skipped": self.skipped}


def stalled_runs(session: Session, quiet: timedelta) -> list[str]:
    """Ids of fully sent runs with unfinished items, none of which changed within ``quiet``."""
    runs, items = EnrichmentRun.__table__, EnrichmentItem.__table__
    statement = (
        select(items.c.run_id)
        .join(runs, runs.c.id == items.c.run_id)
        .where(runs.c.status == "running", items.c.status.not_in(FINAL_ITEM_STATUSES))
        .group_by(items.c.run_id)
        .having(func.max(items.c.updated_at) < func.now() - quiet)
        .order_by(items.c.run_id)
    )
    return list(session.execute(statement).scalars())


def reap(
    sessions: sessionmaker[Session],
    app: Celery,
    *,
    batch_size: int,
    quiet: timedelta = DEFAULT_QUIET,
    backlog: Callable[[Celery], int] = broker_backlog,
) -> ReapReport:
    """One pass: resend the unfinished items of every stalled run, if the broker holds no message."""
    report = ReapReport()
    engine = sessions.kw["bind"]
    # a session lock on a connection of its own: the resends below commit many times, on other connections
    with engine.connect() as lock_connection:
        locked = lock_connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": REAPER_LOCK}).scalar()
        lock_connection.commit()
        if not locked:
            report.skipped = "another reaper is running"
            return report
        try:
            _reap_locked(sessions, app, batch_size, quiet, backlog, report)
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": REAPER_LOCK})
            lock_connection.commit()
    return report


def _reap_locked(
    sessions: sessionmaker[Session],
    app: Celery,
    batch_size: int,
    quiet: timedelta,
    backlog: Callable[[Celery], int],
    report: ReapReport,
) -> None:
    """The pass itself, under the reaper's lock; fills ``report``."""
    with sessions() as session:
        candidates = stalled_runs(session, quiet)
    if not candidates:
        return
    waiting = backlog(app)
    if waiting:
        # a queue that still holds messages may hold these runs' messages: they are late, not lost
        report.skipped = f"the broker still holds {waiting} messages"
        return
    for run_id in candidates:
        summary = resume_run(run_id, sessions=sessions, app=app, batch_size=batch_size, progress=False)
        log.warning("run %s had lost its messages: resent %d items", run_id, summary.enqueued)
        report.resent[run_id] = summary.enqueued


def reap_stalled_runs(settings: Settings) -> dict[str, object]:
    """One reaper pass with the configured database, broker and batch size; what it did."""
    from db.engine import make_engine, make_session_factory
    from producer.broker import producer_app

    engine = make_engine(settings.require_database_url())
    try:
        report = reap(
            make_session_factory(engine),
            producer_app(settings),
            batch_size=settings.batch_size,
            quiet=timedelta(seconds=settings.reaper_quiet),
        )
    finally:
        engine.dispose()
    return report.as_dict()
