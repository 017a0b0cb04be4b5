"""The Celery task: one message = one batch of image references, handed to ``process_batch``."""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

import boto3
from celery import shared_task
from sqlalchemy.exc import DBAPIError, OperationalError

from catalog_enrich.messages import ENRICH_BATCH_TASK
from catalog_enrich.settings import Settings
from db.engine import make_session_factory
from db.ledger import ItemOutcome, record_item_outcomes
from worker.batch import BatchContext, BatchMessage, InvalidMessageError, process_batch
from worker.engine_holder import get_engine
from worker.fetch import TransientFetchError
from worker.images import DecodeLimits
from worker.metrics import BATCH_RETRIES, instrumented, observe_delivery, observe_report

log = logging.getLogger(__name__)

#: retries of a batch after a passing failure (throttling, lost database), with exponential backoff
TRANSIENT_RETRIES = 3

#: first backoff in seconds; doubled at each retry, capped at ``MAX_BACKOFF``
FIRST_BACKOFF = 5
MAX_BACKOFF = 120


@cache
def batch_context() -> BatchContext:
    """The per-process context: settings, S3 client, database sessions, engine provider."""
    settings = Settings.from_env()
    context = BatchContext(
        engine_provider=lambda: get_engine(settings),
        s3=boto3.client("s3", **settings.s3.client_kwargs()),
        sessions=make_session_factory(settings.require_database_url()),
        limits=DecodeLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels),
    )
    return instrumented(context)


def mark_failed(batch: BatchMessage, reason: str) -> None:
    """Leave the batch's unfinished items ``failed`` with a reason, so ``enqueue --resume`` finds them."""
    outcomes = [ItemOutcome(item.item_id, "failed", reason) for item in batch.items]
    try:
        with batch_context().sessions.begin() as session:
            record_item_outcomes(session, outcomes)
    except (OperationalError, DBAPIError):
        # the database is the thing that is down: the items stay queued, which resume also picks up
        log.exception("could not mark batch %s failed", batch.batch_id)


@shared_task(name=ENRICH_BATCH_TASK, bind=True, max_retries=TRANSIENT_RETRIES)
def enrich_batch(self: Any, message: dict) -> dict:
    """Enrich the batch described by ``message``; retries passing S3 and database failures."""
    try:
        batch = BatchMessage.from_payload(message)
    except InvalidMessageError as error:
        # nothing in it can be tied to the ledger; retrying would fail the same way
        log.error("dropping message: %s", error)
        return {"dropped": str(error)}
    observe_delivery(message, len(batch.items), retries=self.request.retries)
    started = time.perf_counter()
    try:
        report = process_batch(batch, batch_context())
    except (TransientFetchError, OperationalError, DBAPIError) as error:
        if self.request.retries >= TRANSIENT_RETRIES:
            mark_failed(batch, f"gave up after {TRANSIENT_RETRIES} retries: {str(error)[:200]}")
            raise
        countdown = min(MAX_BACKOFF, FIRST_BACKOFF * 2**self.request.retries)
        log.warning("batch %s: %s; retrying in %d s", batch.batch_id, error, countdown)
        BATCH_RETRIES.inc()
        raise self.retry(exc=error, countdown=countdown) from error
    observe_report(report, time.perf_counter() - started)
    log.info(
        "batch %s of run %s: %d done, %d dead-lettered, %d skipped",
        batch.batch_id,
        batch.run_id,
        report.done,
        report.dead_lettered,
        report.skipped,
    )
    return {
        "run_id": batch.run_id,
        "batch_id": batch.batch_id,
        "done": report.done,
        "dead_lettered": report.dead_lettered,
        "skipped": report.skipped,
    }
