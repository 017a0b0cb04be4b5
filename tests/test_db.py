"""Database writes against a real PostgreSQL: every write is idempotent and never goes backwards."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import ATTRIBUTES
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.schema import SCHEMA_VERSION
from db import (
    CatalogResult,
    DeadLetterRecord,
    ItemOutcome,
    ItemRef,
    add_ledger_items,
    create_run,
    enriched_etags,
    finish_run,
    make_session_factory,
    record_dead_letters,
    record_deliveries,
    record_item_outcomes,
    run_counts,
    unfinished_items,
    upsert_catalog_rows,
)
from db.models import CatalogRow, DeadLetter, EnrichmentItem, EnrichmentRun

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


def new_run(sessions: sessionmaker[Session], model_version: str = "m1", bucket: str = "images") -> str:
    # each run in its own transaction, so each gets its own started_at
    with sessions.begin() as session:
        return create_run(session, bucket=bucket, prefix="a/", model_version=model_version, parameters={"k": 1})


def result(run_id: str, key: str, *, etag: str = "e1", model_version: str = "m1", **attributes: str) -> CatalogResult:
    return CatalogResult(
        bucket="images",
        key=key,
        attributes=ATTRIBUTES | attributes,
        raw_output='{"product_name": "Blue Denim Jacket"}',
        etag=etag,
        model_version=model_version,
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        attempts=1,
        latency_ms=120,
    )


def catalog_row(sessions: sessionmaker[Session], key: str) -> CatalogRow:
    with sessions() as session:
        return session.get_one(CatalogRow, ("images", key))


def test_same_batch_twice_writes_once(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    batch = [result(run_id, f"twice/{n}.jpg") for n in range(5)]
    with sessions.begin() as session:
        assert upsert_catalog_rows(session, batch) == 5
    with sessions.begin() as session:
        assert upsert_catalog_rows(session, batch) == 0
        count = session.scalar(select(func.count()).select_from(CatalogRow).where(CatalogRow.key.like("twice/%")))
    assert count == 5
    row = catalog_row(sessions, "twice/0.jpg")
    assert (row.gender, row.attributes["usage"], row.run_id) == ("Men", "Casual", run_id)


def test_older_run_never_overwrites_newer(sessions: sessionmaker[Session]) -> None:
    old_run = new_run(sessions, "m1")
    new = new_run(sessions, "m2")
    with sessions.begin() as session:
        upsert_catalog_rows(session, [result(new, "order.jpg", model_version="m2", color="Red")])
    # the old run's slow batch finishes late
    with sessions.begin() as session:
        assert upsert_catalog_rows(session, [result(old_run, "order.jpg", model_version="m1")]) == 0
    assert catalog_row(sessions, "order.jpg").color == "Red"
    # a still newer run with a replaced image does overwrite
    newest = new_run(sessions, "m2")
    with sessions.begin() as session:
        assert upsert_catalog_rows(session, [result(newest, "order.jpg", etag="e2", model_version="m2")]) == 1
    row = catalog_row(sessions, "order.jpg")
    assert (row.etag, row.color, row.run_id) == ("e2", "Blue", newest)


def test_raw_output_with_nul_is_stored(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    dirty = CatalogResult(**{**result(run_id, "nul.jpg").__dict__, "raw_output": "bad\x00byte \ud800"})
    with sessions.begin() as session:
        upsert_catalog_rows(session, [dirty])
    assert "\x00" not in (catalog_row(sessions, "nul.jpg").raw_output or "")


def test_enriched_etags(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        upsert_catalog_rows(session, [result(run_id, f"seen/{n}.jpg", etag=f"e{n}") for n in range(3)])
    keys = [f"seen/{n}.jpg" for n in range(5)]
    with sessions() as session:
        assert enriched_etags(session, "images", keys, "m1") == {(f"seen/{n}.jpg", f"e{n}") for n in range(3)}
        assert enriched_etags(session, "images", keys, "m9") == set()
        assert enriched_etags(session, "other-bucket", keys, "m1") == set()
        assert enriched_etags(session, "images", [], "m1") == set()


def test_ledger_items_are_added_once(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    refs = [ItemRef("images", f"ledger/{n}.jpg", f"e{n}", batch_id="b0") for n in range(10)]
    with sessions.begin() as session:
        first = add_ledger_items(session, run_id, refs)
    with sessions.begin() as session:
        again = add_ledger_items(session, run_id, list(reversed(refs)))
        count = session.scalar(select(func.count()).where(EnrichmentItem.run_id == run_id))
    assert again == list(reversed(first)) and len(set(first)) == 10 and count == 10


def test_late_duplicate_never_downgrades_a_final_state(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        done, dead, retried = add_ledger_items(session, run_id, [ItemRef("images", f"s/{n}", "e") for n in range(3)])
    with sessions.begin() as session:
        assert record_deliveries(session, [done, dead, retried]) == {done: 1, dead: 1, retried: 1}
        outcomes = [ItemOutcome(done, "done", attempts=1), ItemOutcome(retried, "failed", "timeout", 1)]
        assert record_item_outcomes(session, outcomes) == 2
    with sessions.begin() as session:
        letter = DeadLetterRecord(dead, run_id, "images", "s/1", "e", "invalid json", "{oops", 3, "m1")
        assert record_dead_letters(session, [letter]) == 1
        assert record_dead_letters(session, [letter]) == 0
    # the first delivery of the same batch finishes late with stale outcomes
    with sessions.begin() as session:
        stale = [
            ItemOutcome(done, "failed", "late"),
            ItemOutcome(dead, "queued"),
            ItemOutcome(done, "queued"),
        ]
        assert record_item_outcomes(session, stale) == 0
        assert record_item_outcomes(session, [ItemOutcome(retried, "done", attempts=2)]) == 1
        # a delivery that comes after every item is final claims nothing
        assert record_deliveries(session, [done, dead, retried]) == {}
        statuses = dict(session.execute(select(EnrichmentItem.id, EnrichmentItem.status)).all())
        letters = session.scalar(select(func.count()).select_from(DeadLetter).where(DeadLetter.run_id == run_id))
    assert (statuses[done], statuses[dead], statuses[retried]) == ("done", "dead_lettered", "done")
    assert letters == 1


def test_counts_unfinished_items_and_finish(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        ids = add_ledger_items(session, run_id, [ItemRef("images", f"c/{n}", "e") for n in range(4)])
        record_item_outcomes(session, [ItemOutcome(ids[0], "done"), ItemOutcome(ids[1], "failed", "s3 error")])
    with sessions.begin() as session:
        assert [item.id for item in unfinished_items(session, run_id)] == ids[1:]
        counts = finish_run(session, run_id, "completed")
    assert counts == {
        "listed": 0,
        "skipped": 0,
        "enqueued": 0,
        "queued": 2,
        "failed": 1,
        "dead_lettered": 0,
        "done": 1,
    }
    with sessions() as session:
        run = session.get_one(EnrichmentRun, run_id)
        assert (run.status, run.done, run.failed, run.finished_at is not None) == ("completed", 1, 1, True)
        assert run_counts(session, run_id) == counts


def test_adding_many_ledger_items_is_fast(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    refs = [ItemRef("images", f"bulk/{n:06d}.jpg", f"etag{n}") for n in range(20_000)]
    began = time.monotonic()
    with sessions.begin() as session:
        ids = add_ledger_items(session, run_id, refs)
    elapsed = time.monotonic() - began
    print(f"20000 ledger items added in {elapsed:.2f} s")
    assert len(set(ids)) == 20_000 and elapsed < 20
