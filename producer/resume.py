"""Resuming a run: send again, in new batches, every ledger item that never reached a final state.

Nothing is listed: the ledger is the record of what the run must do. Items still ``queued`` (a message
lost with a Redis restart, or a producer that crashed between commit and send) and items ``failed`` are
both resent; a worker skips any that a late original delivery finished meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.progress import progress_bar
from db.ledger import LedgerItem, assign_batch, run_counts, unfinished_items
from db.models import EnrichmentRun
from producer.broker import batch_sender
from producer.preflight import ProducerError
from producer.sending import RunSummary, batch_payload, finish_enqueue, new_batch_id

#: items whose new batch ids are recorded in one transaction before their messages are sent
ITEMS_PER_TRANSACTION = 1000

#: run states a resume refuses: the run was stopped on purpose or given up on
CLOSED_STATUSES = ("failed", "cancelled")


def _run_row(session: Session, run_id: str) -> tuple[str, str]:
    """The run's model version and status; ProducerError when there is no such run."""
    runs = EnrichmentRun.__table__
    row = session.execute(select(runs.c.model_version, runs.c.status).where(runs.c.id == run_id)).one_or_none()
    if row is None:
        raise ProducerError(f"no run {run_id!r} in the database: check the id printed by enqueue")
    return row.model_version, row.status


def _plan(session: Session, run_id: str, items: Sequence[LedgerItem], batch_size: int) -> list[dict[str, object]]:
    """Give ``items`` new batch ids in the ledger; the batch messages to send after the commit."""
    messages = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        batch_id = new_batch_id()
        assign_batch(session, [item.id for item in batch], batch_id)
        rows = [(item.id, item.bucket, item.key, item.etag) for item in batch]
        messages.append(batch_payload(run_id, batch_id, rows))
    return messages


def resume_run(
    run_id: str, *, sessions: sessionmaker[Session], app: Celery, batch_size: int, progress: bool = True
) -> RunSummary:
    """Resend a run's unfinished items in batches of ``batch_size``; returns what was sent.

    The run is then marked fully sent (a run whose producer died while listing ends with the items it had
    recorded; enqueue the prefix again for the rest, already enriched images are skipped).
    """
    with sessions.begin() as session:
        model_version, status = _run_row(session, run_id)
        if status in CLOSED_STATUSES:
            raise ProducerError(f"run {run_id} is {status}: start a new run instead of resuming it")
        counts = run_counts(session, run_id)
    summary = RunSummary(run_id=run_id, model_version=model_version, resumed=True)
    # a multiple of the batch size, so every batch but the last is full
    step = max(batch_size, ITEMS_PER_TRANSACTION - ITEMS_PER_TRANSACTION % batch_size)
    bar = progress_bar(desc="resending", total=counts["queued"] + counts["failed"], unit=" items", disable=not progress)
    last_id = 0
    with bar, batch_sender(app) as sender:
        while True:
            # one page at a time: a run of millions of images never sits in memory at once
            with sessions.begin() as session:
                chunk = unfinished_items(session, run_id, after_id=last_id, limit=step)
                messages = _plan(session, run_id, chunk, batch_size)
            if not chunk:
                break
            # sent only after the commit: the ledger names each item's current batch first
            for message in messages:
                sender.send(message)
            last_id = chunk[-1].id
            summary.enqueued += len(chunk)
            summary.batches += len(messages)
            bar.update(len(chunk))
    finish_enqueue(sessions, summary)
    return summary
