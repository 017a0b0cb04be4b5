"""The producer against real S3, PostgreSQL and Redis: listing, dedupe, ledger, messages, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.messages import ENRICH_BATCH_TASK, INFERENCE_QUEUE
from catalog_enrich.schema import SCHEMA_VERSION
from catalog_enrich.settings import S3Settings, Settings
from db import CatalogResult, ItemOutcome, make_session_factory, record_item_outcomes, upsert_catalog_rows
from db.models import EnrichmentItem, EnrichmentRun
from producer.backlog import broker_backlog
from producer.broker import producer_app
from producer.cli import main
from producer.following import follow_run
from producer.listing import is_image_key, list_image_pages
from producer.reaper import REAPER_LOCK, reap
from producer.resume import resume_run
from producer.sending import EnqueueRequest, enqueue_run
from producer.version import producer_model_version
from worker.batch import BatchMessage

pytestmark = pytest.mark.services

ATTRIBUTES = {
    "product_name": "Shirt",
    "product_type": "Shirts",
    "color": "Blue",
    "gender": "Men",
    "season": "Fall",
    "usage": "Casual",
}

#: keys that break naive URL or shell handling; they must reach the message byte for byte
AWKWARD_KEYS = (
    "with space/a b.jpg",
    "unicode/çüé 日本.png",
    'quotes/it\'s "q".jpeg',
    "hash/#1.webp",
    "question/what?.gif",
    "percent/100%25 off%.bmp",
    "plus/a+b.tiff",
)


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture
def broker(broker_url: str) -> str:
    """The test broker, emptied before each test."""
    redis.Redis.from_url(broker_url).flushdb()
    return broker_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, broker: str, s3: Any, service_env: dict[str, str]) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=database_url,
        broker_url=broker,
        base_model="test-base-model",
        s3=S3Settings(
            endpoint_url=s3.endpoint_url,
            access_key_id=service_env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=service_env.get("AWS_SECRET_ACCESS_KEY"),
        ),
    )


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment variables that make ``enqueue`` use the test servers."""
    variables = {
        "CATALOG_HOME": str(settings.home),
        "CATALOG_DATABASE_URL": settings.database_url,
        "CATALOG_BROKER_URL": settings.broker_url,
        "CATALOG_BASE_MODEL": settings.base_model,
        "AWS_ENDPOINT_URL_S3": settings.s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.s3.secret_access_key,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value or "")
    monkeypatch.delenv("CATALOG_ADAPTER", raising=False)
    monkeypatch.delenv("CATALOG_BATCH_SIZE", raising=False)
    return settings


def put(s3: Any, keys: list[str] | tuple[str, ...]) -> None:
    for key in keys:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=key.encode())


def messages(broker_url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message waiting on the inference queue, consumed with kombu: (task name, batch payload)."""
    found = []
    with Connection(broker_url) as connection:
        queue = connection.SimpleQueue(INFERENCE_QUEUE, no_ack=True)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            assert message.content_type == "application/json"
            _args, kwargs, _embed = message.decode()
            found.append((message.headers["task"], kwargs["message"]))
        queue.close()
    return found


def enqueue(settings: Settings, s3: Any, sessions: sessionmaker[Session], **fields: Any) -> Any:
    request = EnqueueRequest(bucket=s3.bucket, **fields)
    version = producer_model_version(settings, s3.client)
    return enqueue_run(
        request, s3=s3.client, sessions=sessions, app=producer_app(settings), model_version=version, progress=False
    )


def ledger(sessions: sessionmaker[Session], run_id: str) -> list[Any]:
    table = EnrichmentItem.__table__
    with sessions() as session:
        return list(session.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.id)))


def run_row(sessions: sessionmaker[Session], run_id: str) -> Any:
    with sessions() as session:
        return session.get_one(EnrichmentRun, run_id)


def test_image_keys() -> None:
    assert is_image_key("a/b.JPG") and is_image_key("x.tiff") and is_image_key("a.b/c.Webp")
    assert not is_image_key("folder.jpg/") and not is_image_key("notes.txt") and not is_image_key("jpg")
    assert not is_image_key("a/.jpg/readme") and not is_image_key("png")


def test_listing_filters_prefix_extensions_since_and_limit(s3: Any) -> None:
    put(s3, ["shop/a.jpg", "shop/b.PNG", "shop/c.txt", "shop/dir/", "shop/d.jpeg", "other/e.jpg"])
    pages = list(list_image_pages(s3.client, s3.bucket, prefix="shop/"))
    assert [obj.key for _, images in pages for obj in images] == ["shop/a.jpg", "shop/b.PNG", "shop/d.jpeg"]
    assert all(obj.etag and '"' not in obj.etag for _, images in pages for obj in images)
    limited = list(list_image_pages(s3.client, s3.bucket, prefix="shop/", limit=2))
    assert [obj.key for _, images in limited for obj in images] == ["shop/a.jpg", "shop/b.PNG"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert [images for _, images in list_image_pages(s3.client, s3.bucket, since=future)] == [[]]
    past = datetime.now(UTC) - timedelta(hours=1)
    assert sum(len(images) for _, images in list_image_pages(s3.client, s3.bucket, since=past)) == 4


def test_listing_streams_pages(s3: Any) -> None:
    put(s3, [f"many/{n:04d}.jpg" for n in range(1050)])
    pages = list(list_image_pages(s3.client, s3.bucket, page_size=100))
    assert len(pages) == 11
    assert [obj.key for _, images in pages for obj in images] == [f"many/{n:04d}.jpg" for n in range(1050)]
    limited = list(list_image_pages(s3.client, s3.bucket, page_size=100, limit=1001))
    assert len(limited) == 11 and sum(len(images) for _, images in limited) == 1001


def test_enqueue_records_ledger_then_sends_batches(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    keys = [f"img/{n:03d}.jpg" for n in range(45)]
    put(s3, keys)
    summary = enqueue(settings, s3, sessions, batch_size=10, page_size=7)
    assert (summary.listed, summary.skipped, summary.enqueued, summary.batches) == (45, 0, 45, 5)
    sent = messages(broker)
    assert [task for task, _ in sent] == [ENRICH_BATCH_TASK] * 5
    batches = [BatchMessage.from_payload(payload) for _, payload in sent]
    assert [len(batch.items) for batch in batches] == [10, 10, 10, 10, 5]
    rows = {row.id: row for row in ledger(sessions, summary.run_id)}
    assert len(rows) == 45
    for batch in batches:
        assert batch.run_id == summary.run_id
        for item in batch.items:
            row = rows[item.item_id]
            assert (row.key, row.etag, row.batch_id, row.status) == (item.key, item.etag, batch.batch_id, "queued")
    assert sorted(item.key for batch in batches for item in batch.items) == keys
    run = run_row(sessions, summary.run_id)
    assert (run.status, run.listed, run.enqueued, run.parameters["batch_size"]) == ("running", 45, 45, 10)


def test_dedupe_skips_enriched_and_force_overrides(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, ["d/same.jpg", "d/changed.jpg", "d/new.jpg"])
    first = enqueue(settings, s3, sessions, batch_size=16)
    version = first.model_version
    etags = {obj.key: obj.etag for _, images in list_image_pages(s3.client, s3.bucket) for obj in images}
    results = [
        CatalogResult(
            s3.bucket, "d/same.jpg", ATTRIBUTES, None, etags["d/same.jpg"], version, SCHEMA_VERSION, first.run_id
        ),
        CatalogResult(s3.bucket, "d/changed.jpg", ATTRIBUTES, None, "old-etag", version, SCHEMA_VERSION, first.run_id),
    ]
    with sessions.begin() as session:
        upsert_catalog_rows(session, results)
    messages(broker)
    second = enqueue(settings, s3, sessions)
    assert (second.listed, second.skipped, second.enqueued) == (3, 1, 2)
    sent = [item["key"] for _, payload in messages(broker) for item in payload["items"]]
    assert sorted(sent) == ["d/changed.jpg", "d/new.jpg"]
    forced = enqueue(settings, s3, sessions, force=True)
    assert (forced.skipped, forced.enqueued) == (0, 3)


def test_dry_run_records_and_sends_nothing(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, [f"dry/{n}.jpg" for n in range(5)])
    with sessions() as session:
        before = session.query(EnrichmentRun).count()
    summary = enqueue(settings, s3, sessions, dry_run=True, batch_size=2)
    assert (summary.run_id, summary.listed, summary.enqueued, summary.batches) == (None, 5, 5, 3)
    with sessions() as session:
        assert session.query(EnrichmentRun).count() == before
    assert messages(broker) == []


def test_awkward_keys_reach_the_message_unchanged(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, AWKWARD_KEYS)
    summary = enqueue(settings, s3, sessions, batch_size=100)
    sent = [item["key"] for _, payload in messages(broker) for item in payload["items"]]
    assert sorted(sent) == sorted(AWKWARD_KEYS)
    assert sorted(row.key for row in ledger(sessions, summary.run_id)) == sorted(AWKWARD_KEYS)


def test_empty_run_is_completed_at_once(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, ["nothing/readme.txt"])
    summary = enqueue(settings, s3, sessions)
    assert summary.enqueued == 0 and messages(broker) == []
    run = run_row(sessions, summary.run_id)
    assert run.status == "completed" and run.finished_at is not None


def test_resume_resends_only_unfinished_items(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, [f"r/{n}.jpg" for n in range(10)])
    summary = enqueue(settings, s3, sessions, batch_size=4)
    items = ledger(sessions, summary.run_id)
    outcomes = [ItemOutcome(row.id, "done") for row in items[:5]]
    outcomes += [ItemOutcome(items[5].id, "dead_lettered", "bad"), ItemOutcome(items[6].id, "failed", "s3 down")]
    with sessions.begin() as session:
        record_item_outcomes(session, outcomes)
    old_batches = {row.id: row.batch_id for row in items}
    messages(broker)
    resumed = resume_run(summary.run_id, sessions=sessions, app=producer_app(settings), batch_size=2, progress=False)
    assert (resumed.enqueued, resumed.batches) == (4, 2)
    batches = [BatchMessage.from_payload(payload) for _, payload in messages(broker)]
    resent = sorted(item.item_id for batch in batches for item in batch.items)
    assert resent == sorted(row.id for row in items[6:])
    after = {row.id: row.batch_id for row in ledger(sessions, summary.run_id)}
    assert all(after[item_id] != old_batches[item_id] for item_id in resent)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(item_id, "done") for item_id in resent])
    # nothing is left unfinished; the follower notices and completes the run
    result = follow_run(sessions, summary.run_id, timeout=5, interval=0.1, progress=False)
    assert (result.status, result.counts["done"], result.counts["dead_lettered"]) == ("completed", 9, 1)


def test_cli_json_and_wait_timeout(cli_env: Settings, s3: Any, broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    put(s3, [f"cli/{n}.png" for n in range(7)])
    assert main(["--bucket", s3.bucket, "--batch-size", "3", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert out.count("\n") == 1
    assert summary["run_id"] and (summary["listed"], summary["enqueued"], summary["batches"]) == (7, 7, 3)
    code = main(["--bucket", s3.bucket, "--force", "--json", "--wait", "--timeout", "0.5"])
    captured = capsys.readouterr()
    assert code == 3 and "gave up waiting" in captured.err
    waited = json.loads(captured.out)
    assert waited["status"] == "running" and waited["timed_out"] and waited["done"] == 0
    assert main(["--resume", waited["run_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["enqueued"] == 7


def test_cli_wait_reports_a_completed_run(cli_env: Settings, s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    put(s3, ["empty/readme.md"])
    assert main(["--bucket", s3.bucket, "--wait", "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert "completed: 0 done, 0 failed, 0 dead-lettered" in out


def test_remote_adapter_version_follows_its_files(settings: Settings, s3: Any) -> None:
    put(s3, ["adapters/v1/adapter_config.json", "adapters/v1/adapter_model.safetensors"])
    base = producer_model_version(settings, s3.client)
    remote = Settings(**{**settings.__dict__, "adapter": f"s3://{s3.bucket}/adapters/v1"})
    first = producer_model_version(remote, s3.client)
    assert first != base and producer_model_version(remote, s3.client) == first
    s3.client.put_object(Bucket=s3.bucket, Key="adapters/v1/adapter_model.safetensors", Body=b"retrained")
    assert producer_model_version(remote, s3.client) != first


def test_reaper_resends_a_stalled_run_only_once_the_broker_holds_nothing(
    settings: Settings, s3: Any, sessions: sessionmaker[Session], broker: str
) -> None:
    put(s3, [f"reap/{n}.jpg" for n in range(5)])
    summary = enqueue(settings, s3, sessions, prefix="reap/", batch_size=2)
    items = ledger(sessions, summary.run_id)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(items[0].id, "done")])
    app = producer_app(settings)
    # the run's 3 messages are still queued: its items are late, not lost
    assert broker_backlog(app) == 3
    waiting = reap(sessions, app, batch_size=2, quiet=timedelta(0))
    assert waiting.resent == {} and waiting.skipped == "the broker still holds 3 messages"
    redis.Redis.from_url(broker).flushdb()
    assert broker_backlog(app) == 0
    # items that changed within the quiet period are not called stalled yet
    assert summary.run_id not in reap(sessions, app, batch_size=2, quiet=timedelta(hours=1)).resent
    report = reap(sessions, app, batch_size=2, quiet=timedelta(0))
    assert report.resent[summary.run_id] == 4
    payloads = [payload for _, payload in messages(broker) if payload["run_id"] == summary.run_id]
    resent = sorted(item.item_id for payload in payloads for item in BatchMessage.from_payload(payload).items)
    assert resent == sorted(row.id for row in items[1:])


def test_only_one_reaper_acts_at_a_time(settings: Settings, sessions: sessionmaker[Session], broker: str) -> None:
    engine = sessions.kw["bind"]
    with engine.connect() as other:
        assert other.execute(select(func.pg_try_advisory_lock(REAPER_LOCK))).scalar_one()
        report = reap(sessions, producer_app(settings), batch_size=2, quiet=timedelta(0), backlog=lambda app: 0)
        other.execute(select(func.pg_advisory_unlock(REAPER_LOCK)))
    assert report.skipped == "another reaper is running" and report.resent == {}
