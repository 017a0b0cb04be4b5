"""``catalog status``: a run's progress read back from a real PostgreSQL ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.cli import main
from catalog_enrich.run_status import format_duration, load_progress, recent_runs
from db import ItemOutcome, ItemRef, add_ledger_items, create_run, make_session_factory, record_item_outcomes
from db.ledger import DeadLetterRecord, record_dead_letters, set_run_counts
from db.runs import mark_enqueued

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture
def db_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", database_url)


def make_run(sessions: sessionmaker[Session], *, done: int, dead: int, failed: int, queued: int) -> str:
    """A running run with items in each state; the run started 100 s before its last item finished."""
    total = done + dead + failed + queued
    with sessions.begin() as session:
        run_id = create_run(session, bucket="shop", prefix="shoes/", model_version="m1")
        ids = add_ledger_items(session, run_id, [ItemRef("shop", f"shoes/{n}.jpg", "e") for n in range(total)])
        set_run_counts(session, run_id, listed=total + 2, skipped=2, enqueued=total)
        mark_enqueued(session, run_id)
        record_item_outcomes(session, [ItemOutcome(i, "done", None, 1) for i in ids[:done]])
        letters = [
            DeadLetterRecord(i, run_id, "shop", f"shoes/{n}.jpg", "e", "bad image: empty", None, 0, "m1")
            for n, i in enumerate(ids[done : done + dead], start=done)
        ]
        record_dead_letters(session, letters)
        record_item_outcomes(session, [ItemOutcome(i, "failed", "S3 throttled") for i in ids[done + dead :][:failed]])
        # pin the clock: the run began 100 s before now(), when the final items were recorded
        session.execute(
            text("UPDATE enrichment_runs SET started_at = now() - interval '100 seconds' WHERE id = :id"),
            {"id": run_id},
        )
    return run_id


def test_progress_counts_rate_and_eta(sessions: sessionmaker[Session]) -> None:
    run_id = make_run(sessions, done=15, dead=5, failed=3, queued=7)
    with sessions() as session:
        progress = load_progress(session, run_id)
    assert progress is not None
    assert (progress.status, progress.listed, progress.skipped, progress.enqueued) == ("running", 32, 2, 30)
    assert (progress.done, progress.dead_lettered, progress.failed, progress.queued) == (15, 5, 3, 7)
    assert progress.remaining == 10 and progress.finished == 20
    assert progress.rate == pytest.approx(0.2, rel=0.05)
    assert progress.eta_seconds == pytest.approx(50, rel=0.05)
    values = progress.as_dict()
    assert values["remaining"] == 10 and values["started_at"].endswith("+00:00")
    json.dumps(values)


def test_run_without_finished_items_has_no_rate(sessions: sessionmaker[Session]) -> None:
    run_id = make_run(sessions, done=0, dead=0, failed=0, queued=4)
    with sessions() as session:
        progress = load_progress(session, run_id)
        assert load_progress(session, "no-such-run") is None
    assert progress is not None
    assert (progress.rate, progress.eta_seconds, progress.remaining) == (None, None, 4)


def test_recent_runs_newest_first(sessions: sessionmaker[Session]) -> None:
    older = make_run(sessions, done=1, dead=0, failed=0, queued=0)
    newer = make_run(sessions, done=0, dead=0, failed=0, queued=0)
    with sessions.begin() as session:
        session.execute(
            text("UPDATE enrichment_runs SET started_at = started_at + interval '1 hour' WHERE id = :id"),
            {"id": newer},
        )
    with sessions() as session:
        runs = recent_runs(session, limit=10)
        assert [run.run_id for run in recent_runs(session, limit=1)] == [newer]
    ids = [run.run_id for run in runs]
    assert ids.index(newer) < ids.index(older)
    empty = runs[ids.index(newer)]
    assert (empty.done, empty.queued, empty.remaining, empty.eta_seconds) == (0, 0, 0, 0.0)


def test_durations_read_naturally() -> None:
    assert format_duration(None) == "-"
    assert format_duration(12.34) == "12.3s"
    assert format_duration(185) == "3m05s"
    assert format_duration(timedelta(hours=1, minutes=2).total_seconds()) == "1h02m"


def test_status_command_text_and_json(sessions, db_env, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_run(sessions, done=2, dead=1, failed=0, queued=1)
    assert main(["status", run_id]) == 0
    out = capsys.readouterr().out
    assert "run:" in out and run_id in out and "remaining:" in out and "dead-lettered: 1" in out
    assert main(["status", run_id, "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert (values["done"], values["dead_lettered"], values["remaining"]) == (2, 1, 1)
    assert main(["status", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert 1 <= len(listed) <= 10 and run_id in {run["run_id"] for run in listed}
    assert main(["status"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["run", "status", "started"] and run_id in table


def test_status_command_unknown_run(db_env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no run 'no-such-run'") and len(err.strip().splitlines()) == 1


def test_status_command_unreachable_database(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a port nothing listens on: refused at once
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql+psycopg://user:secret@127.0.0.1:9/catalog")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach database") and len(err.strip().splitlines()) == 1
    assert "secret" not in err


def test_status_command_bad_settings(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", "mysql://nope")
    assert main(["status"]) == 1
    assert capsys.readouterr().err.startswith("error: invalid settings")
