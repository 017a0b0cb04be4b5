"""Enqueueing a run: list a page, drop what is enriched, record the ledger rows, then send the batches.

Ledger rows are committed before their message is sent: a crash in between leaves items ``queued`` in
Postgres, which ``enqueue --resume`` sends again, and never a message whose items the ledger lacks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.progress import progress_bar
from db.ledger import ItemRef, add_ledger_items, create_run, set_run_counts
from db.runs import complete_run_if_finished, mark_enqueued
from producer.broker import BatchSender, batch_sender
from producer.dedupe import drop_enriched
from producer.listing import PAGE_SIZE, ListedObject, list_image_pages
from producer.preflight import ProducerError, first_line


@dataclass(frozen=True, kw_only=True)
class EnqueueRequest:
    """What to enqueue: images under ``prefix`` of ``bucket`` modified at or after ``since`` (aware), at most
    ``limit`` of them, ``batch_size`` per message; ``force`` re-enqueues enriched ones too, ``dry_run``
    records and sends nothing; ``page_size`` is the listing page size."""

    bucket: str
    prefix: str = ""
    since: datetime | None = None
    limit: int | None = None
    batch_size: int = 16
    force: bool = False
    dry_run: bool = False
    page_size: int = PAGE_SIZE

    def parameters(self) -> dict[str, Any]:
        """The request as JSON-able run parameters, stored with the run for later audits."""
        values = asdict(self)
        values["since"] = self.since.isoformat() if self.since else None
        return values


@dataclass(kw_only=True)
class RunSummary:
    """What an enqueue (or resume) did; ``run_id`` is None for a dry run."""

    run_id: str | None
    model_version: str
    listed: int = 0
    skipped: int = 0
    enqueued: int = 0
    batches: int = 0
    dry_run: bool = False
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-able dict."""
        return asdict(self)


def new_batch_id() -> str:
    """A fresh batch id (batches of a resume are new batches, never a reuse of old ids)."""
    return uuid.uuid4().hex


def batch_payload(run_id: str, batch_id: str, items: Sequence[tuple[int, str, str, str]]) -> dict[str, Any]:
    """The message of one batch from ``(item_id, bucket, key, etag)`` tuples (see catalog_enrich.messages)."""
    return {
        "run_id": run_id,
        "batch_id": batch_id,
        "items": [{"item_id": i, "bucket": b, "key": k, "etag": e} for i, b, k, e in items],
    }


def _record_and_plan(
    session: Session, run_id: str, bucket: str, ready: Sequence[ListedObject], batch_size: int
) -> list[dict[str, Any]]:
    """Add ``ready`` to the ledger in batches of ``batch_size``; the messages to send once committed."""
    batch_ids = [new_batch_id() for _ in range(0, len(ready), batch_size)]
    refs = [ItemRef(bucket, obj.key, obj.etag, batch_ids[n // batch_size]) for n, obj in enumerate(ready)]
    ids = add_ledger_items(session, run_id, refs)
    rows = [(item_id, ref.bucket, ref.key, ref.etag) for item_id, ref in zip(ids, refs, strict=True)]
    return [
        batch_payload(run_id, batch_id, rows[n * batch_size : (n + 1) * batch_size])
        for n, batch_id in enumerate(batch_ids)
    ]


@contextmanager
def _optional_sender(app: Celery | None) -> Iterator[BatchSender | None]:
    """A BatchSender over one connection, or None when there is no app (a dry run never connects)."""
    if app is None:
        yield None
        return
    with batch_sender(app) as sender:
        yield sender


class _RunWriter:
    """The per-page work of one run: dedupe, record, send, and the counts so far in ``summary``."""

    def __init__(
        self,
        request: EnqueueRequest,
        summary: RunSummary,
        sessions: sessionmaker[Session],
        sender: BatchSender | None,
    ) -> None:
        self.request, self.summary, self.sessions, self.sender = request, summary, sessions, sender
        self.pending: list[ListedObject] = []

    def add_page(self, images: Sequence[ListedObject], *, last: bool = False) -> None:
        """Take one listing page; sends every full batch (and, on the ``last`` call, the remainder)."""
        request, summary, size = self.request, self.summary, self.request.batch_size
        with self.sessions.begin() as session:
            fresh = images
            if not request.force:
                fresh = drop_enriched(session, request.bucket, images, summary.model_version)
            summary.listed += len(images)
            summary.skipped += len(images) - len(fresh)
            self.pending += fresh
            # full batches go now; a partial one waits for the next page unless this is the end
            cut = len(self.pending) if last else len(self.pending) - len(self.pending) % size
            ready, self.pending = self.pending[:cut], self.pending[cut:]
            messages = self._record(session, ready)
        # sent only after the commit above: every message's items are already in the ledger
        if self.sender is not None:
            for message in messages:
                self.sender.send(message)
        summary.enqueued += len(ready)
        summary.batches += -(-len(ready) // size)

    def _record(self, session: Session, ready: Sequence[ListedObject]) -> list[dict[str, Any]]:
        """Record ``ready`` and the run's counts so far (nothing for a dry run); the messages to send."""
        summary = self.summary
        if summary.run_id is None:
            return []
        messages = _record_and_plan(session, summary.run_id, self.request.bucket, ready, self.request.batch_size)
        enqueued = summary.enqueued + len(ready)
        set_run_counts(session, summary.run_id, listed=summary.listed, skipped=summary.skipped, enqueued=enqueued)
        return messages


def enqueue_run(
    request: EnqueueRequest,
    *,
    s3: Any,
    sessions: sessionmaker[Session],
    app: Celery | None,
    model_version: str,
    progress: bool = True,
) -> RunSummary:
    """List, dedupe, record and send one run; returns its summary. ``app`` is not used by a dry run."""
    summary = RunSummary(run_id=None, model_version=model_version, dry_run=request.dry_run)
    if not request.dry_run:
        with sessions.begin() as session:
            summary.run_id = create_run(
                session,
                bucket=request.bucket,
                prefix=request.prefix,
                model_version=model_version,
                parameters=request.parameters(),
            )
    pages = list_image_pages(
        s3,
        request.bucket,
        prefix=request.prefix,
        since=request.since,
        limit=request.limit,
        page_size=request.page_size,
    )
    bar = progress_bar(desc="listing", unit=" keys", disable=not progress)
    try:
        with bar, _optional_sender(None if request.dry_run else app) as sender:
            writer = _RunWriter(request, summary, sessions, sender)
            for seen, images in pages:
                writer.add_page(images)
                bar.update(seen)
                # no forced redraw: in a log file the bar is written only every few seconds
                bar.set_postfix(
                    images=summary.listed, skipped=summary.skipped, enqueued=summary.enqueued, refresh=False
                )
            writer.add_page([], last=True)
    except (Exception, KeyboardInterrupt) as error:
        if summary.run_id is None:
            raise
        cause = "interrupted" if isinstance(error, KeyboardInterrupt) else first_line(error)
        raise ProducerError(
            f"{cause}; run {summary.run_id} stopped while enqueueing after {summary.enqueued} images: "
            f"`enqueue --resume {summary.run_id}` sends what it recorded"
        ) from error
    if summary.run_id is not None:
        finish_enqueue(sessions, summary)
    return summary


def finish_enqueue(sessions: sessionmaker[Session], summary: RunSummary) -> None:
    """Store the final counts and mark the run fully sent; completes it at once if nothing is left to do."""
    assert summary.run_id is not None
    with sessions.begin() as session:
        if not summary.resumed:
            set_run_counts(
                session, summary.run_id, listed=summary.listed, skipped=summary.skipped, enqueued=summary.enqueued
            )
        mark_enqueued(session, summary.run_id)
        complete_run_if_finished(session, summary.run_id)
