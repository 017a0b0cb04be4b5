"""Nightly backfills: settings, the beat schedule, and the backfill task against real PostgreSQL, Redis and S3."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import ATTRIBUTES
from kombu import Connection
from sqlalchemy import select

from catalog_enrich.backfill_settings import BackfillTarget, parse_targets
from catalog_enrich.cli import build_parser
from catalog_enrich.messages import BACKFILL_TASK, CONTROL_QUEUE, INFERENCE_QUEUE, REAP_STALLED_RUNS_TASK
from catalog_enrich.schema import SCHEMA_VERSION
from catalog_enrich.settings import Settings, SettingsError
from db.catalog import CatalogResult, upsert_catalog_rows
from db.engine import make_session_factory
from db.ledger import ItemOutcome, record_item_outcomes
from db.models import EnrichmentRun
from db.runs import complete_run_if_finished
from producer.backfill import backfill_from_settings, target_lock, target_lock_key
from worker.app import celery_config
from worker.beat_schedule import BACKFILL_EXPIRES, beat_schedule
from worker.control_tasks import backfill


def settings_from(tmp_path: Path, **variables: str) -> Settings:
    return Settings.from_env({"CATALOG_HOME": str(tmp_path), **variables})


def test_backfill_settings_defaults_and_parsing(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    assert (settings.backfill_cron, settings.backfill_targets, settings.reaper_interval) == ("0 2 * * *", (), 300)
    assert settings.log_format == "text"
    settings = settings_from(
        tmp_path,
        CATALOG_BACKFILL_TARGETS=" products, s3://archive/2024/ ,products,",
        CATALOG_BACKFILL_CRON=" 30  3 * * 1-5 ",
        CATALOG_REAPER_INTERVAL="60",
        CATALOG_LOG_FORMAT="JSON",
    )
    assert settings.backfill_targets == (BackfillTarget("products"), BackfillTarget("archive", "2024/"))
    assert (settings.backfill_cron, settings.reaper_interval, settings.log_format) == ("30 3 * * 1-5", 60, "json")
    assert "backfill targets: products/, archive/2024/" in settings.describe()


def test_bad_backfill_settings_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        settings_from(
            tmp_path,
            CATALOG_BACKFILL_TARGETS="products,Bad_Bucket/x",
            CATALOG_BACKFILL_CRON="0 25 * * *",
            CATALOG_REAPER_INTERVAL="0",
            CATALOG_LOG_FORMAT="xml",
        )
    message = str(error.value)
    assert "'Bad_Bucket/x' does not start with a bucket name" in message
    assert "CATALOG_BACKFILL_CRON='0 25 * * *': bad hour '25'" in message
    assert "CATALOG_REAPER_INTERVAL=0 must be at least 1" in message
    assert "CATALOG_LOG_FORMAT='xml'" in message
    with pytest.raises(SettingsError, match="has 4 fields: use five fields"):
        settings_from(tmp_path, CATALOG_BACKFILL_CRON="0 2 * *")
    assert parse_targets("ab")[1] and parse_targets("/prefix-only")[1] and not parse_targets("")[1]


def test_beat_schedule_comes_from_the_settings(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        CATALOG_BROKER_URL="redis://127.0.0.1:6379/0",
        CATALOG_BACKFILL_TARGETS="products,archive/2024/",
        CATALOG_BACKFILL_CRON="30 3 * * 1-5",
        CATALOG_REAPER_INTERVAL="120",
    )
    config = celery_config(settings)
    schedule = config["beat_schedule"]
    assert set(schedule) == {REAP_STALLED_RUNS_TASK, f"{BACKFILL_TASK} products/", f"{BACKFILL_TASK} archive/2024/"}
    reaper = schedule[REAP_STALLED_RUNS_TASK]
    assert (reaper["task"], reaper["schedule"]) == (REAP_STALLED_RUNS_TASK, 120.0)
    assert reaper["options"] == {"queue": CONTROL_QUEUE, "expires": 120}
    nightly = schedule[f"{BACKFILL_TASK} archive/2024/"]
    assert nightly["task"] == BACKFILL_TASK and nightly["args"] == ("archive", "2024/")
    assert nightly["options"] == {"queue": CONTROL_QUEUE, "expires": BACKFILL_EXPIRES}
    cron = nightly["schedule"]
    assert (cron.minute, cron.hour, cron.day_of_week) == ({30}, {3}, {1, 2, 3, 4, 5})
    assert cron.day_of_month == set(range(1, 32)) and cron.month_of_year == set(range(1, 13))
    # control tasks never land on a GPU worker's queue
    assert config["task_routes"][BACKFILL_TASK] == {"queue": CONTROL_QUEUE}
    assert config["task_routes"][REAP_STALLED_RUNS_TASK] == {"queue": CONTROL_QUEUE}
    assert not backfill.acks_late


def test_default_schedule_is_two_at_night_with_the_reaper_alone_when_no_target(tmp_path: Path) -> None:
    schedule = beat_schedule(settings_from(tmp_path))
    assert list(schedule) == [REAP_STALLED_RUNS_TASK]
    with_target = beat_schedule(settings_from(tmp_path, CATALOG_BACKFILL_TARGETS="products"))
    cron = with_target[f"{BACKFILL_TASK} products/"]["schedule"]
    assert (cron.minute, cron.hour) == ({0}, {2})


def test_control_worker_consumes_only_the_control_queue_without_a_model() -> None:
    from catalog_enrich.commands import beat, control_worker

    argv = control_worker.worker_argv(build_parser().parse_args(["control-worker"]))
    assert f"--queues={CONTROL_QUEUE}" in argv and "--pool=threads" in argv
    assert "--hostname=control@%h" in argv
    # worker.main builds the Celery app on import (it needs a broker), so compare with its source
    source = (Path(__file__).parent.parent / "worker" / "main.py").read_text()
    assert f'PRELOAD_VARIABLE = "{control_worker.PRELOAD_VARIABLE}"' in source
    assert beat.PRELOAD_VARIABLE == control_worker.PRELOAD_VARIABLE


def test_the_reaper_task_runs_the_producers_reaper_with_the_settings(tmp_path, monkeypatch) -> None:
    import producer.reaper
    from worker.control_tasks import reap_stalled_runs

    passes = []
    monkeypatch.setattr(producer.reaper, "reap_stalled_runs", lambda settings: passes.append(settings) or {"n": 1})
    monkeypatch.setenv("CATALOG_HOME", str(tmp_path))
    monkeypatch.setenv("CATALOG_BATCH_SIZE", "7")
    assert reap_stalled_runs.name == REAP_STALLED_RUNS_TASK and not reap_stalled_runs.acks_late
    assert reap_stalled_runs.apply().get() == {"n": 1}
    assert len(passes) == 1 and passes[0].batch_size == 7


def test_lock_keys_differ_per_target() -> None:
    keys = {target_lock_key(BackfillTarget(b, p)) for b, p in [("a1b", ""), ("a1b", "x/"), ("a1c", ""), ("a1", "bx/")]}
    assert len(keys) == 4 and all(-(2**63) <= key < 2**63 for key in keys)
    assert target_lock_key(BackfillTarget("a1b", "x/")) == target_lock_key(BackfillTarget("a1b", "x/"))


# -- with real services ---------------------------------------------------------------------------------


@pytest.fixture
def backfill_env(service_env, database_url, broker_url, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment a control worker would have, set in this process (the task reads it)."""
    for name in list(os.environ):
        if name.startswith(("CATALOG_", "AWS_")):
            monkeypatch.delenv(name)
    env = {
        "CATALOG_HOME": str(tmp_path),
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_BROKER_URL": broker_url,
        "CATALOG_BASE_MODEL": "example/base-model-a",
        "CATALOG_BATCH_SIZE": "2",
        "AWS_ENDPOINT_URL_S3": service_env["AWS_ENDPOINT_URL_S3"],
        "AWS_ACCESS_KEY_ID": service_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": service_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": service_env.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sessions(database_url):
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


def upload(s3, keys: list[str], body: bytes = b"jpeg bytes") -> None:
    for key in keys:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)


def take_messages(broker_url: str, run_id: str) -> list[dict]:
    """This run's batch messages, taken off the inference queue (other tests' messages are dropped)."""
    found = []
    with Connection(broker_url) as connection:
        queue = connection.SimpleQueue(INFERENCE_QUEUE, no_ack=True)
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                break
            body = message.decode()[1]["message"]
            if body["run_id"] == run_id:
                found.append(body)
        queue.close()
    return found


def finish_like_a_worker(sessions, messages: list[dict], model_version: str) -> None:
    """Record every item of ``messages`` enriched, as a worker's batch transaction does."""
    for message in messages:
        items = message["items"]
        results = [
            CatalogResult(
                bucket=item["bucket"],
                key=item["key"],
                attributes=ATTRIBUTES,
                raw_output=None,
                etag=item["etag"],
                model_version=model_version,
                schema_version=SCHEMA_VERSION,
                run_id=message["run_id"],
            )
            for item in items
        ]
        with sessions.begin() as session:
            upsert_catalog_rows(session, results)
            record_item_outcomes(session, [ItemOutcome(item["item_id"], "done", None, 1) for item in items])
            complete_run_if_finished(session, message["run_id"])


def run_status(sessions, run_id: str) -> str:
    with sessions() as session:
        return session.scalar(select(EnrichmentRun.status).where(EnrichmentRun.id == run_id))


@pytest.mark.services
def test_backfill_is_incremental_and_never_overlaps_a_run_in_progress(
    s3, backfill_env, broker_url, sessions, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.INFO, logger="producer.backfill")
    upload(s3, ["shop/a.jpg", "shop/b.jpg", "shop/c.png", "shop/readme.txt"])

    first = backfill.apply(args=(s3.bucket, "shop/")).get()
    assert (first["listed"], first["skipped"], first["enqueued"], first["batches"]) == (3, 0, 3, 2)
    run_id = first["run_id"]
    assert run_status(sessions, run_id) == "running"
    messages = take_messages(broker_url, run_id)
    assert sorted(item["key"] for m in messages for item in m["items"]) == ["shop/a.jpg", "shop/b.jpg", "shop/c.png"]

    # the workers have not finished: the next tick must not start a second run of the same prefix
    second = backfill.apply(args=(s3.bucket, "shop/")).get()
    assert second["skipped"].startswith(f"run {run_id} is still running (since ")
    assert "run_id" not in second
    assert any("skipped: run " + run_id in line for line in caplog.messages)

    finish_like_a_worker(sessions, messages, first["model_version"])
    assert run_status(sessions, run_id) == "completed"
    upload(s3, ["shop/d.jpg"])
    upload(s3, ["shop/a.jpg"], body=b"a new photo")  # replaced: new ETag
    third = backfill.apply(args=(s3.bucket, "shop/")).get()
    assert (third["listed"], third["skipped"], third["enqueued"]) == (4, 2, 2)
    resent = take_messages(broker_url, third["run_id"])
    assert sorted(item["key"] for m in resent for item in m["items"]) == ["shop/a.jpg", "shop/d.jpg"]

    # a new model version makes every image new again
    finish_like_a_worker(sessions, resent, third["model_version"])
    monkeypatch.setenv("CATALOG_BASE_MODEL", "example/base-model-b")
    fourth = backfill.apply(args=(s3.bucket, "shop/")).get()
    assert (fourth["listed"], fourth["skipped"], fourth["enqueued"]) == (4, 0, 4)
    assert fourth["model_version"] != third["model_version"]
    take_messages(broker_url, fourth["run_id"])


@pytest.mark.services
def test_a_backfill_starting_elsewhere_makes_the_next_one_skip(s3, backfill_env, sessions) -> None:
    upload(s3, ["a.jpg"])
    target = BackfillTarget(s3.bucket, "")
    with target_lock(sessions.kw["bind"], target) as taken:
        assert taken
        outcome = backfill.apply(args=(s3.bucket, "")).get()
    assert outcome["skipped"] == "another backfill of this target is starting a run"
    with sessions() as session:
        assert session.scalars(select(EnrichmentRun.id).where(EnrichmentRun.bucket == s3.bucket)).all() == []


@pytest.mark.services
def test_two_ticks_at_once_start_one_run(s3, backfill_env, broker_url, sessions) -> None:
    upload(s3, [f"img/{n}.jpg" for n in range(5)])
    settings = Settings.from_env()
    target = BackfillTarget(s3.bucket, "img/")
    start = threading.Barrier(2)
    outcomes = []

    def tick() -> None:
        start.wait()
        outcomes.append(backfill_from_settings(target, settings))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    started = [outcome for outcome in outcomes if outcome.summary is not None]
    assert len(outcomes) == 2 and len(started) == 1
    with sessions() as session:
        runs = session.scalars(select(EnrichmentRun.id).where(EnrichmentRun.bucket == s3.bucket)).all()
    assert runs == [started[0].summary.run_id]
    take_messages(broker_url, runs[0])


@pytest.mark.services
def test_catalog_beat_sends_the_reaper_to_the_control_queue(broker_url, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "AWS_"))} | {
        "CATALOG_HOME": str(tmp_path),
        "CATALOG_BROKER_URL": broker_url,
        "CATALOG_REAPER_INTERVAL": "1",
    }
    command = [sys.executable, "-m", "catalog_enrich.cli", "beat", "--log-json", "--loglevel", "INFO"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = redis.Redis.from_url(broker_url)
    ticks: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while not ticks and time.monotonic() < deadline and process.poll() is None:
            raw = client.lrange(CONTROL_QUEUE, 0, -1)
            ticks = [body for body in raw if json.loads(body)["headers"]["task"] == REAP_STALLED_RUNS_TASK]
            time.sleep(0.3)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
        for body in client.lrange(CONTROL_QUEUE, 0, -1):
            client.lrem(CONTROL_QUEUE, 0, body)
        client.close()
    assert ticks, f"beat sent no reaper tick:\n{err[-3000:]}"
    assert (tmp_path / "beat-schedule").exists() or list(tmp_path.glob("beat-schedule*"))
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["message"] == "reaper every 1 s" for line in lines)
    assert any(line["logger"].startswith("celery.beat") for line in lines)
    assert out.strip() == ""
    assert all(line.keys() >= {"timestamp", "level", "logger", "message"} for line in lines)
