"""The scheduled backfill of one bucket prefix: an incremental enqueue that is never started twice at once.

It is incremental because enqueueing already skips images the current model enriched from the same ETag:
only new or replaced images are sent, and everything again once the model version changes. Two beat ticks
(or two beats by mistake) can hand the same target to two control workers at the same moment, so a
PostgreSQL advisory lock per target lets one of them check for runs in progress and start the run while
the other skips.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from celery import Celery
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from catalog_enrich.backfill_settings import BackfillTarget
from catalog_enrich.log_context import log_context
from catalog_enrich.settings import Settings
from db.engine import make_engine, make_session_factory
from db.models import EnrichmentRun
from producer.broker import producer_app
from producer.preflight import check_bucket, check_database
from producer.sending import EnqueueRequest, RunSummary, enqueue_run
from producer.version import producer_model_version

log = logging.getLogger(__name__)

#: run states that mean a run of the target is still under way: the backfill waits for it to finish
IN_PROGRESS_STATUSES = ("enqueuing", "running")


@dataclass(frozen=True)
class RunInProgress:
    """A run of the same bucket prefix that has not finished yet."""

    run_id: str
    status: str
    started_at: datetime


@dataclass(frozen=True, kw_only=True)
class BackfillOutcome:
    """What one backfill did: the run it enqueued, or why it started none."""

    target: BackfillTarget
    summary: RunSummary | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON-able data (the task's result)."""
        return {
            "bucket": self.target.bucket,
            "prefix": self.target.prefix,
            "skipped": self.skipped,
            **(self.summary.as_dict() if self.summary else {}),
        }


def target_lock_key(target: BackfillTarget) -> int:
    """The advisory lock key of ``target``: 64 bits of a hash of its bucket and prefix, signed as bigint."""
    digest = hashlib.blake2b(f"backfill\0{target.bucket}\0{target.prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def target_lock(engine: Engine, target: BackfillTarget) -> Iterator[bool]:
    """Hold the target's advisory lock for the block if nobody else does; yields whether it was taken.

    A session lock on a connection of its own, not a transaction lock: enqueueing commits page by page,
    and the lock must outlive every one of those transactions.
    """
    key = target_lock_key(target)
    with engine.connect() as connection:
        taken = bool(connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one())
        connection.commit()
        try:
            yield taken
        finally:
            if taken:
                _unlock(connection, key)


def _unlock(connection: Connection, key: int) -> None:
    """Release the lock; a connection that cannot say so is discarded, which releases it too."""
    try:
        connection.execute(select(func.pg_advisory_unlock(key)))
        connection.commit()
    except SQLAlchemyError:
        # never hand a connection that may still hold the lock back to the pool
        connection.invalidate()


def runs_in_progress(engine: Engine, target: BackfillTarget) -> list[RunInProgress]:
    """Runs of exactly this bucket and prefix still enqueuing or running, oldest first."""
    runs = EnrichmentRun.__table__
    statement = (
        select(runs.c.id, runs.c.status, runs.c.started_at)
        .where(runs.c.bucket == target.bucket, runs.c.prefix == target.prefix)
        .where(runs.c.status.in_(IN_PROGRESS_STATUSES))
        .order_by(runs.c.started_at)
    )
    with engine.connect() as connection:
        return [RunInProgress(row.id, row.status, row.started_at) for row in connection.execute(statement)]


def skip_reason(run: RunInProgress) -> str:
    """Why the backfill waits for ``run``, with what to do if that run is stuck."""
    since = run.started_at.isoformat(timespec="seconds")
    if run.status == "enqueuing":
        return (
            f"run {run.run_id} is still enqueuing (since {since}); if its producer died, "
            f"`enqueue --resume {run.run_id}` finishes sending it"
        )
    return f"run {run.run_id} is still running (since {since}); `catalog status {run.run_id}` shows its progress"


def backfill_target(
    target: BackfillTarget, *, engine: Engine, s3: Any, app: Celery, model_version: str, batch_size: int
) -> BackfillOutcome:
    """Enqueue the target's new and changed images, unless a run of it is under way or being started."""
    with target_lock(engine, target) as taken:
        if not taken:
            outcome = BackfillOutcome(target=target, skipped="another backfill of this target is starting a run")
        elif in_progress := runs_in_progress(engine, target):
            outcome = BackfillOutcome(target=target, skipped=skip_reason(in_progress[0]))
        else:
            request = EnqueueRequest(bucket=target.bucket, prefix=target.prefix, batch_size=batch_size)
            sessions = make_session_factory(engine)
            summary = enqueue_run(
                request, s3=s3, sessions=sessions, app=app, model_version=model_version, progress=False
            )
            outcome = BackfillOutcome(target=target, summary=summary)
    _log_outcome(outcome)
    return outcome


def _log_outcome(outcome: BackfillOutcome) -> None:
    """One log line per backfill, tagged with its run when it started one."""
    if outcome.summary is None:
        log.info("backfill of %s skipped: %s", outcome.target, outcome.skipped)
        return
    summary = outcome.summary
    with log_context(run_id=summary.run_id):
        log.info(
            "backfill of %s: listed %d, skipped %d already enriched, enqueued %d images in %d batches",
            outcome.target,
            summary.listed,
            summary.skipped,
            summary.enqueued,
            summary.batches,
        )


def backfill_from_settings(target: BackfillTarget, settings: Settings) -> BackfillOutcome:
    """One backfill with the configured database, broker, S3 and model; ProducerError if one is unusable."""
    engine = make_engine(settings.require_database_url())
    try:
        check_database(engine)
        s3 = boto3.client("s3", **settings.s3.client_kwargs())
        check_bucket(s3, target.bucket, settings.s3.endpoint_url)
        return backfill_target(
            target,
            engine=engine,
            s3=s3,
            app=producer_app(settings),
            model_version=producer_model_version(settings, s3),
            batch_size=settings.batch_size,
        )
    finally:
        engine.dispose()
