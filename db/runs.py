"""A run's life after enqueueing: ``enqueuing`` -> ``running`` -> ``completed``.

The producer marks a run ``running`` once every message is sent; a run is completed by whoever records the
last final item (a worker after a batch, or the producer itself when every item was already final). Both
sides lock the run row first, so a worker finishing its last batch while the producer marks the run
``running`` cannot leave it running forever: whichever commits second sees the other's writes.
"""

from __future__ import annotations

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from db.ledger import run_counts
from db.models import FINAL_ITEM_STATUSES, EnrichmentItem, EnrichmentRun


def _locked_status(session: Session, run_id: str) -> str | None:
    """The run's status, with its row locked until the transaction ends (None if there is no such run)."""
    runs = EnrichmentRun.__table__
    # FOR NO KEY UPDATE, not FOR UPDATE: the batch's own catalog inserts already hold a KEY SHARE lock on
    # this row (their foreign key), and two batches each holding one while asking for FOR UPDATE deadlock
    statement = select(runs.c.status).where(runs.c.id == run_id).with_for_update(key_share=True)
    return session.execute(statement).scalar_one_or_none()


def mark_enqueued(session: Session, run_id: str) -> bool:
    """Move a run from ``enqueuing`` to ``running`` (every message is sent); False if it was not enqueuing."""
    runs = EnrichmentRun.__table__
    statement = update(runs).where(runs.c.id == run_id, runs.c.status == "enqueuing").values(status="running")
    return session.execute(statement).rowcount == 1


def complete_run_if_finished(session: Session, run_id: str) -> bool:
    """Mark a ``running`` run ``completed`` (with its final counts) when none of its items is unfinished.

    Returns True when this call completed the run. A run still ``enqueuing`` is never completed here:
    the producer may not have sent everything yet.
    """
    if _locked_status(session, run_id) != "running":
        return False
    items = EnrichmentItem.__table__
    unfinished = exists().where(items.c.run_id == run_id, items.c.status.not_in(FINAL_ITEM_STATUSES))
    if session.execute(select(unfinished)).scalar():
        return False
    counts = run_counts(session, run_id)
    runs = EnrichmentRun.__table__
    session.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status="completed",
            finished_at=func.now(),
            done=counts["done"],
            failed=counts["failed"],
            dead_lettered=counts["dead_lettered"],
        )
    )
    return True


def run_status(session: Session, run_id: str) -> str | None:
    """The run's status, or None when there is no such run."""
    runs = EnrichmentRun.__table__
    return session.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar_one_or_none()
