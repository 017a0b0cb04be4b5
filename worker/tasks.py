"""The Celery task: one message = one batch of image references, handed to ``process_batch``."""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError

from catalog_enrich.messages import ENRICH_BATCH_TASK
from catalog_enrich.settings import Settings
from db.engine import make_session_factory
from db.ledger import ItemOutcome, record_item_outcomes
from worker.batch import BatchContext, BatchMessage, InvalidMessageError, process_batch
from worker.batch_log_context import in_batch_log_context
from worker.engine_holder import get_engine
from worker.fetch import FETCH_CONCURRENCY, S3AccessError, TransientFetchError
from worker.images import DecodeLimits
from worker.metrics import BATCH_RETRIES, instrumented, observe_delivery, observe_report

log = logging.getLogger(__name__)

#: retries of a batch after a passing failure (throttling, lost database), with exponential backoff:
#: 5 + 10 + 20 + 40 + 80 s rides out a database failover or a restart of any of the servers
TRANSIENT_RETRIES = 5

#: first backoff in seconds; doubled at each retry, capped at ``MAX_BACKOFF``
FIRST_BACKOFF = 5
MAX_BACKOFF = 120


@cache
def batch_context() -> BatchContext:
    """The per-process context: settings, S3 client, database sessions, engine provider."""
    settings = Settings.from_env()
    context = BatchContext(
        engine_provider=lambda: get_engine(settings),
        # a connection per concurrent fetch: the default pool of 10 would drop and reopen the others
        s3=boto3.client("s3", config=Config(max_pool_connections=FETCH_CONCURRENCY), **settings.s3.client_kwargs()),
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
@in_batch_log_context
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
    except S3AccessError as error:
        # retrying with the same credentials changes nothing: record why, for a resume once they are fixed
        log.error("batch %s: %s", batch.batch_id, error)
        mark_failed(batch, f"{error}: fix the worker's AWS settings, then `enqueue --resume {batch.run_id}`")
        return {"run_id": batch.run_id, "batch_id": batch.batch_id, "failed": str(error)}
    except (TransientFetchError, OperationalError, DBAPIError) as error:
        if self.request.retries >= TRANSIENT_RETRIES:
            mark_failed(batch, f"gave up after {TRANSIENT_RETRIES} retries: {str(error)[:200]}")
            raise
        countdown = min(MAX_BACKOFF, FIRST_BACKOFF * 2**self.request.retries)
        log.warning("batch %s: %s; retrying in %d s", batch.batch_id, error, countdown)
        BATCH_RETRIES.inc()
        raise self.retry(exc=error, countdown=countdown) from error
    except SoftTimeLimitExceeded:
        # the hard kill follows shortly: record the items first, so a resend finds them (one at a time)
        log.error("batch %s ran past its soft time limit", batch.batch_id)
        mark_failed(batch, "the batch ran past the task's soft time limit")
        return {"run_id": batch.run_id, "batch_id": batch.batch_id, "failed": "soft time limit"}
    except Exception as error:
        # unforeseen: record it against the items so they are resent rather than left waiting, then let
        # Celery log the traceback
        mark_failed(batch, f"unexpected error: {type(error).__name__}: {str(error)[:200]}")
        raise
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
