"""Runs, the per-image ledger and dead letters: the durable record of what must be done and what was.

Redis may lose or repeat messages; this ledger does neither. Every write is idempotent: adding the same
images twice returns the same ids, a duplicate delivery's outcome never moves an item out of a final state,
and an item has at most one dead letter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    case,
    column,
    func,
    select,
    text,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import (
    FINAL_ITEM_STATUSES,
    ITEM_STATUSES,
    RUN_STATUSES,
    DeadLetter,
    EnrichmentItem,
    EnrichmentRun,
    clean_text,
)

#: how far along each ledger state is; an outcome may only move an item forward (or sideways if not final)
STATUS_RANK = {status: rank for rank, status in enumerate(ITEM_STATUSES)}


@dataclass(frozen=True)
class ItemRef:
    """An image to enrich: where it is, its ETag, and optionally the batch it is sent in."""

    bucket: str
    key: str
    etag: str
    batch_id: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one ledger item in one delivery: a status from ``ITEM_STATUSES``, why, and after
    how many model attempts."""

    item_id: int
    status: str
    reason: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class DeadLetterRecord:
    """An image given up on, with the evidence: the reason, the last raw model output, the attempts."""

    item_id: int
    run_id: str
    bucket: str
    key: str
    etag: str
    reason: str
    raw_output: str | None
    attempts: int
    model_version: str


@dataclass(frozen=True)
class LedgerItem:
    """One ledger row as read back for re-enqueueing."""

    id: int
    bucket: str
    key: str
    etag: str
    status: str
    batch_id: str | None
    attempts: int
    deliveries: int


def create_run(
    session: Session,
    *,
    bucket: str,
    prefix: str,
    model_version: str,
    parameters: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> str:
    """Record a new run (or nothing, if ``run_id`` exists already) and return its id."""
    run_id = run_id or uuid.uuid4().hex
    statement = insert(EnrichmentRun.__table__).values(
        id=run_id, bucket=bucket, prefix=prefix, model_version=model_version, parameters=parameters or {}
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))
    return run_id


def set_run_counts(
    session: Session,
    run_id: str,
    *,
    listed: int | None = None,
    skipped: int | None = None,
    enqueued: int | None = None,
) -> None:
    """Store the producer's counts for a run (those given)."""
    counts = {name: value for name, value in (("listed", listed), ("skipped", skipped), ("enqueued", enqueued))}
    changes = {name: value for name, value in counts.items() if value is not None}
    if changes:
        session.execute(update(EnrichmentRun.__table__).where(EnrichmentRun.id == run_id).values(**changes))


def finish_run(session: Session, run_id: str, status: str) -> dict[str, int]:
    """Mark a run finished with ``status`` and snapshot the ledger's counts into it; returns the counts."""
    if status not in RUN_STATUSES[2:]:
        raise ValueError(f"a run finishes as one of {RUN_STATUSES[2:]}, not {status!r}")
    counts = run_counts(session, run_id)
    session.execute(
        update(EnrichmentRun.__table__)
        .where(EnrichmentRun.id == run_id)
        .values(
            status=status,
            finished_at=func.now(),
            done=counts["done"],
            failed=counts["failed"],
            dead_lettered=counts["dead_lettered"],
        )
    )
    return counts


def add_ledger_items(session: Session, run_id: str, refs: Sequence[ItemRef]) -> list[int]:
    """Add images to a run's ledger as ``queued``; their ids in the order of ``refs``.

    Adding an image the run already has keeps its row (and its status) and returns its existing id.
    """
    if not refs:
        return []
    connection = session.connection()
    # COPY into a temporary table and one INSERT ... SELECT: a run can list millions of images, and this
    # is an order of magnitude faster than multi-row VALUES statements
    connection.execute(text(_CREATE_INCOMING))
    connection.execute(text("TRUNCATE incoming_items"))
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy("COPY incoming_items (position, bucket, key, etag, batch_id) FROM STDIN") as copy:
        for position, ref in enumerate(refs):
            copy.write_row((position, ref.bucket, ref.key, ref.etag, ref.batch_id))
    connection.execute(text(_INSERT_INCOMING), {"run_id": run_id})
    ids = connection.execute(text(_SELECT_IDS), {"run_id": run_id}).scalars().all()
    return list(ids)


_CREATE_INCOMING = """
CREATE TEMPORARY TABLE IF NOT EXISTS incoming_items (
    position integer, bucket text, key text, etag text, batch_id text
) ON COMMIT DROP
"""

_INSERT_INCOMING = """
INSERT INTO enrichment_items (run_id, bucket, key, etag, batch_id)
SELECT :run_id, bucket, key, etag, batch_id FROM incoming_items ORDER BY position
ON CONFLICT (run_id, bucket, key) DO NOTHING
"""

_SELECT_IDS = """
SELECT items.id FROM incoming_items AS incoming
JOIN enrichment_items AS items ON items.run_id = :run_id AND items.bucket = incoming.bucket
    AND items.key = incoming.key
ORDER BY incoming.position
"""


def assign_batch(session: Session, item_ids: Sequence[int], batch_id: str) -> None:
    """Record that ``item_ids`` are (re-)sent in batch ``batch_id``."""
    table = EnrichmentItem.__table__
    session.execute(
        update(table).where(table.c.id.in_(list(item_ids))).values(batch_id=batch_id, updated_at=func.now())
    )


def record_deliveries(session: Session, item_ids: Sequence[int]) -> dict[int, int]:
    """Count one more delivery of each item not yet final; item id -> deliveries so far.

    Items already final (finished by another delivery of the same batch) are left out of the result, so a
    poison message shows here as a count that keeps rising, and a duplicate delivery as a missing id.
    """
    table = EnrichmentItem.__table__
    statement = (
        update(table)
        .where(table.c.id.in_(list(item_ids)), table.c.status.not_in(FINAL_ITEM_STATUSES))
        .values(deliveries=table.c.deliveries + 1, updated_at=func.now())
        .returning(table.c.id, table.c.deliveries)
    )
    return {row.id: row.deliveries for row in session.execute(statement)}


def _rank(expression: Any) -> Any:
    return case(STATUS_RANK, value=expression, else_=-1)


def record_item_outcomes(session: Session, outcomes: Iterable[ItemOutcome]) -> int:
    """Apply delivery outcomes to the ledger; the number of items changed.

    An outcome moves an item forward (queued -> failed -> dead_lettered -> done) or repeats a non-final
    state; a late duplicate can never take an item out of ``done`` or ``dead_lettered`` into a lesser state.
    """
    latest: dict[int, ItemOutcome] = {}
    for outcome in outcomes:
        if outcome.status not in STATUS_RANK:
            raise ValueError(f"unknown ledger status {outcome.status!r}; use one of {ITEM_STATUSES}")
        current = latest.get(outcome.item_id)
        if current is None or STATUS_RANK[outcome.status] >= STATUS_RANK[current.status]:
            latest[outcome.item_id] = outcome
    if not latest:
        return 0
    table = EnrichmentItem.__table__
    incoming = values(
        column("item_id", BigInteger),
        column("status", Text),
        column("reason", Text),
        column("attempts", Integer),
        name="incoming",
    ).data([(o.item_id, o.status, clean_text(o.reason), o.attempts) for o in latest.values()])
    stored_rank, incoming_rank = _rank(table.c.status), _rank(incoming.c.status)
    moves_forward = (incoming_rank > stored_rank) | (
        (incoming_rank == stored_rank) & table.c.status.not_in(FINAL_ITEM_STATUSES)
    )
    statement = (
        update(table)
        .where(table.c.id == incoming.c.item_id, moves_forward)
        .values(
            status=incoming.c.status,
            reason=incoming.c.reason,
            attempts=func.greatest(table.c.attempts, incoming.c.attempts),
            updated_at=func.now(),
        )
        .returning(table.c.id)
    )
    return len(session.execute(statement).all())


def record_dead_letters(session: Session, letters: Iterable[DeadLetterRecord]) -> int:
    """Store dead letters (at most one per item; repeats are ignored) and mark their items dead-lettered.

    Returns the number of new dead letters.
    """
    rows = {
        letter.item_id: {
            "item_id": letter.item_id,
            "run_id": letter.run_id,
            "bucket": letter.bucket,
            "key": letter.key,
            "etag": letter.etag,
            "reason": clean_text(letter.reason) or "",
            "attempts": letter.attempts,
            "raw_output": clean_text(letter.raw_output),
            "model_version": letter.model_version,
        }
        for letter in letters
    }
    if not rows:
        return 0
    table = DeadLetter.__table__
    statement = (
        insert(table)
        .values(list(rows.values()))
        .on_conflict_do_nothing(index_elements=["item_id"])
        .returning(table.c.item_id)
    )
    created = len(session.execute(statement).all())
    record_item_outcomes(
        session,
        (ItemOutcome(row["item_id"], "dead_lettered", row["reason"], row["attempts"]) for row in rows.values()),
    )
    return created


def run_counts(session: Session, run_id: str) -> dict[str, int]:
    """A run's producer counts (listed, skipped, enqueued) and its ledger items per status."""
    items = EnrichmentItem.__table__
    per_status = dict.fromkeys(ITEM_STATUSES, 0)
    statement = (
        select(items.c.status, func.count()).where(items.c.run_id == bindparam("run_id")).group_by(items.c.status)
    )
    per_status.update({status: count for status, count in session.execute(statement, {"run_id": run_id})})
    runs = EnrichmentRun.__table__
    run = session.execute(
        select(runs.c.listed, runs.c.skipped, runs.c.enqueued).where(runs.c.id == run_id)
    ).one_or_none()
    producer = dict(run._mapping) if run is not None else {"listed": 0, "skipped": 0, "enqueued": 0}
    return producer | per_status


def unfinished_items(session: Session, run_id: str, *, after_id: int = 0, limit: int | None = None) -> list[LedgerItem]:
    """A run's items not yet in a final state (queued or failed) with ids above ``after_id``, oldest first.

    Page through a large run with ``limit`` and the last id of the previous page as ``after_id``.
    """
    table = EnrichmentItem.__table__
    statement = (
        select(
            table.c.id,
            table.c.bucket,
            table.c.key,
            table.c.etag,
            table.c.status,
            table.c.batch_id,
            table.c.attempts,
            table.c.deliveries,
        )
        .where(table.c.run_id == run_id, table.c.status.not_in(FINAL_ITEM_STATUSES), table.c.id > after_id)
        .order_by(table.c.id)
        .limit(limit)
    )
    return [LedgerItem(**row._mapping) for row in session.execute(statement)]
