"""A run completes only once it is fully sent and none of its items is unfinished."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import ItemOutcome, ItemRef, add_ledger_items, create_run, make_session_factory, record_item_outcomes
from db.models import EnrichmentRun
from db.runs import complete_run_if_finished, mark_enqueued, run_status

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


def new_run(sessions: sessionmaker[Session], items: int) -> tuple[str, list[int]]:
    with sessions.begin() as session:
        run_id = create_run(session, bucket="b", prefix="", model_version="m")
        ids = add_ledger_items(session, run_id, [ItemRef("b", f"{n}.jpg", "e") for n in range(items)])
    return run_id, ids


def test_a_new_run_is_enqueuing(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions, 0)
    with sessions.begin() as session:
        assert run_status(session, run_id) == "enqueuing"
        # nothing unfinished, but the producer may still be listing
        assert not complete_run_if_finished(session, run_id)
        assert run_status(session, run_id) == "enqueuing"


def test_completed_only_when_running_and_every_item_final(sessions: sessionmaker[Session]) -> None:
    run_id, ids = new_run(sessions, 3)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(ids[0], "done"), ItemOutcome(ids[1], "dead_lettered", "x")])
        assert not complete_run_if_finished(session, run_id)
        assert mark_enqueued(session, run_id)
        assert not mark_enqueued(session, run_id)
        assert not complete_run_if_finished(session, run_id)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(ids[2], "failed", "retry me")])
        assert not complete_run_if_finished(session, run_id)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(ids[2], "done")])
        assert complete_run_if_finished(session, run_id)
        # a duplicate delivery finishing later changes nothing
        assert not complete_run_if_finished(session, run_id)
    with sessions() as session:
        run = session.get_one(EnrichmentRun, run_id)
        assert (run.status, run.done, run.dead_lettered, run.failed) == ("completed", 2, 1, 0)
        assert run.finished_at is not None


def test_unknown_run_is_not_completed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert not complete_run_if_finished(session, "no-such-run")
        assert run_status(session, "no-such-run") is None


def test_last_batch_racing_the_end_of_enqueueing_still_completes(sessions: sessionmaker[Session]) -> None:
    run_id, ids = new_run(sessions, 1)
    producer_done: list[bool] = []

    def finish_enqueueing() -> None:
        with sessions.begin() as session:
            mark_enqueued(session, run_id)
            producer_done.append(complete_run_if_finished(session, run_id))

    # the worker records the last item and checks the run while the producer has not yet marked it running
    with sessions.begin() as worker:
        record_item_outcomes(worker, [ItemOutcome(ids[0], "done")])
        assert not complete_run_if_finished(worker, run_id)
        producer = threading.Thread(target=finish_enqueueing)
        producer.start()
        # the producer waits for the worker's lock on the run row, so it sees the worker's outcome
        producer.join(timeout=0.5)
        assert producer.is_alive()
    producer.join(timeout=10)
    assert producer_done == [True]
    with sessions() as session:
        assert run_status(session, run_id) == "completed"
