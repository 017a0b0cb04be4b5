"""Enriching one batch message: claim the items, fetch, decode, run the engine, record every outcome.

A message may be delivered more than once (at-least-once queueing) and may arrive after its items were
finished by an earlier delivery; each item therefore ends in exactly one final ledger state, whatever
the number of deliveries: items already final are skipped, and every write is an idempotent upsert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.log_context import log_context
from db.catalog import CatalogResult, upsert_catalog_rows
from db.ledger import (
    DeadLetterRecord,
    ItemOutcome,
    record_dead_letters,
    record_deliveries,
    record_item_outcomes,
)
from db.models import FINAL_ITEM_STATUSES, EnrichmentItem
from db.runs import complete_run_if_finished
from worker.fetch import ObjectRef, fetch_objects
from worker.images import DecodeLimits, ImageRejectedError, decode_image

log = logging.getLogger(__name__)


class InvalidMessageError(ValueError):
    """A message that is not a batch this worker understands; it is dropped, never retried."""


@dataclass(frozen=True)
class BatchItem:
    """One image reference of a message, tied to its ledger row."""

    item_id: int
    bucket: str
    key: str
    etag: str


@dataclass(frozen=True)
class BatchMessage:
    """A batch as sent by the producer (see ``catalog_enrich.messages``)."""

    run_id: str
    batch_id: str
    items: tuple[BatchItem, ...]

    @classmethod
    def from_payload(cls, payload: Any) -> BatchMessage:
        """Parse and check a message body; raises InvalidMessageError naming what is wrong."""
        try:
            items = tuple(
                BatchItem(int(item["item_id"]), str(item["bucket"]), str(item["key"]), str(item["etag"]))
                for item in payload["items"]
            )
            return cls(str(payload["run_id"]), str(payload["batch_id"]), items)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidMessageError(f"malformed batch message: {type(error).__name__}: {error}") from error


class EnrichmentEngine(Protocol):
    """What the batch needs from the inference engine."""

    @property
    def model_version(self) -> str: ...

    def enrich(self, images: Sequence[Image.Image]) -> list[Any]: ...


@dataclass
class BatchReport:
    """What one delivery did: counts by outcome, for logs and task results."""

    batch_id: str
    done: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add_dead_letter(self, reason: str) -> None:
        """Count one dead letter under the first words of its reason."""
        self.dead_lettered += 1
        family = reason.split(":")[0][:60]
        self.reasons[family] = self.reasons.get(family, 0) + 1


@dataclass(frozen=True)
class BatchContext:
    """Everything a delivery needs besides the message.

    engine_provider: returns the loaded engine (loaded once per process, on first use).
    s3: a boto3 S3 client. sessions: the database session factory. limits: image size limits.
    max_deliveries: deliveries after which an unfinished item is given up on (a poison batch that
    kills its worker every time would otherwise be redelivered forever).
    """

    engine_provider: Callable[[], EnrichmentEngine]
    s3: Any
    sessions: sessionmaker[Session]
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    max_deliveries: int = 5


@dataclass(frozen=True)
class OpenItem:
    """An item of the message not yet final in the ledger: deliveries so far and the last recorded reason."""

    item: BatchItem
    deliveries: int
    reason: str | None


def _open_items(session: Session, message: BatchMessage) -> list[OpenItem]:
    """The message's items that belong to its run and are not final yet, in message order."""
    ids = [item.item_id for item in message.items]
    table = EnrichmentItem.__table__
    rows = session.execute(
        select(table.c.id, table.c.status, table.c.deliveries, table.c.reason).where(
            table.c.id.in_(ids), table.c.run_id == message.run_id
        )
    ).all()
    state = {row.id: row for row in rows if row.status not in FINAL_ITEM_STATUSES}
    return [
        OpenItem(item, state[item.item_id].deliveries, state[item.item_id].reason)
        for item in message.items
        if item.item_id in state
    ]


#: characters of raw model output kept with a dead letter: enough to see what went wrong, bounded even if a
#: broken model never stops talking
RAW_OUTPUT_LIMIT = 16_000


def _dead_letter(message: BatchMessage, item: BatchItem, reason: str, raw: str | None, attempts: int, version: str):
    if raw is not None and len(raw) > RAW_OUTPUT_LIMIT:
        raw = raw[:RAW_OUTPUT_LIMIT] + f"... [{len(raw) - RAW_OUTPUT_LIMIT} more characters]"
    return DeadLetterRecord(
        item_id=item.item_id,
        run_id=message.run_id,
        bucket=item.bucket,
        key=item.key,
        etag=item.etag,
        reason=reason,
        raw_output=raw,
        attempts=attempts,
        model_version=version,
    )


def process_batch(message: BatchMessage, context: BatchContext) -> BatchReport:
    """Enrich one delivered batch and record the outcome of each of its items.

    A batch whose items were delivered before and never recorded is suspect: an earlier delivery may have
    crashed its worker on one of them. Its items then go one at a time, each recorded in its own
    transaction, so one poison image costs only its own retries and never takes the others down with it.
    """
    report = BatchReport(message.batch_id)
    with context.sessions.begin() as session:
        open_items = _open_items(session, message)
        suspect = any(entry.deliveries > 0 for entry in open_items)
        # a first delivery is claimed whole in the same transaction; a suspect one item by item below
        claimed = None if suspect else _claim(session, open_items)
    report.skipped = len(message.items) - len(open_items)
    if suspect:
        log.warning("batch %s was delivered before without finishing: one image at a time", message.batch_id)
        for entry in open_items:
            _process_group(message, [entry], context, report)
    elif open_items:
        _process_group(message, open_items, context, report, claimed)
    return report


def _claim(session: Session, group: list[OpenItem]) -> dict[int, int]:
    """Count this delivery of ``group``'s items; item id -> deliveries, without items already final."""
    # items a concurrent delivery finished meanwhile are left out, and so skipped
    return record_deliveries(session, [entry.item.item_id for entry in group])


def _process_group(
    message: BatchMessage,
    group: list[OpenItem],
    context: BatchContext,
    report: BatchReport,
    deliveries: dict[int, int] | None = None,
) -> None:
    """Claim (unless ``deliveries`` says it is), fetch, decode, enrich and record ``group`` of ``message``."""
    if deliveries is None:
        with context.sessions.begin() as session:
            deliveries = _claim(session, group)
    report.skipped += len(group) - len(deliveries)
    group = [entry for entry in group if entry.item.item_id in deliveries]
    if not group:
        return
    engine = context.engine_provider()
    version = engine.model_version
    letters: list[DeadLetterRecord] = []
    runnable = []
    for entry in group:
        if deliveries[entry.item.item_id] > context.max_deliveries:
            reason = f"gave up after {context.max_deliveries} deliveries: the worker crashed or timed out each time"
            if entry.reason:
                reason += f"; last recorded failure: {entry.reason}"
            letters.append(_dead_letter(message, entry.item, reason, None, 0, version))
        else:
            runnable.append(entry.item)
    fetched = fetch_objects(
        context.s3,
        [ObjectRef(item.bucket, item.key, item.etag) for item in runnable],
        max_bytes=context.limits.max_bytes,
    )
    images: list[Image.Image] = []
    decoded_items: list[tuple[BatchItem, str]] = []
    for item, obj in zip(runnable, fetched, strict=True):
        try:
            if obj.data is None:
                raise ImageRejectedError(obj.reason or "object could not be fetched")
            images.append(decode_image(obj.data, context.limits))
            decoded_items.append((item, obj.etag))
        except ImageRejectedError as rejected:
            letters.append(_dead_letter(message, item, f"bad image: {rejected}", None, 0, version))
    results = engine.enrich(images) if images else []
    rows: list[CatalogResult] = []
    outcomes: list[ItemOutcome] = []
    for (item, etag), result in zip(decoded_items, results, strict=True):
        if result.ok:
            rows.append(
                CatalogResult(
                    bucket=item.bucket,
                    key=item.key,
                    attributes=result.attributes,
                    raw_output=result.raw_output,
                    etag=etag,
                    model_version=result.model_version,
                    schema_version=result.schema_version,
                    run_id=message.run_id,
                    attempts=result.attempts,
                    latency_ms=round(result.seconds * 1000),
                )
            )
            outcomes.append(ItemOutcome(item.item_id, "done", None, result.attempts))
        else:
            reason = f"invalid model output after {result.attempts} attempts: {result.reason}"
            letters.append(_dead_letter(message, item, reason, result.raw_output, result.attempts, version))
    with context.sessions.begin() as session:
        upsert_catalog_rows(session, rows)
        record_item_outcomes(session, outcomes)
        record_dead_letters(session, letters)
        complete_run_if_finished(session, message.run_id)
    report.done += len(rows)
    for letter in letters:
        report.add_dead_letter(letter.reason)
        with log_context(key=letter.key):
            log.warning("dead-lettered: %s", letter.reason)
