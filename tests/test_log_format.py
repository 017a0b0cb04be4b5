"""Structured logs: the log context, text and JSON lines, and the batch task's lines tagged with their ids."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest

from catalog_enrich.cli import build_parser
from catalog_enrich.commands.log_options import apply_log_json, celery_flags
from catalog_enrich.log_context import ContextFilter, current_context, log_context
from catalog_enrich.log_format import JsonFormatter, TextFormatter, log_handler
from catalog_enrich.settings import Settings
from db.engine import make_session_factory
from db.ledger import ItemRef, add_ledger_items, create_run
from db.runs import mark_enqueued
from worker.batch import BatchContext
from worker.batch_log_context import message_ids


def record(message: str, *args: object, name: str = "worker.tasks", **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    ContextFilter().filter(entry)
    return entry


def test_json_lines_carry_the_context_of_the_block() -> None:
    with log_context(run_id="r1", batch_id="b1"):
        batch_line = JsonFormatter().format(record("batch %s: %d done", "b1", 3))
        with log_context(key="shop/a b.jpg"):
            item_line = JsonFormatter().format(record("dead-lettered: %s", "bad image"))
    outside = json.loads(JsonFormatter().format(record("idle")))

    batch = json.loads(batch_line)
    assert batch["message"] == "batch b1: 3 done" and batch["level"] == "INFO" and batch["logger"] == "worker.tasks"
    assert (batch["run_id"], batch["batch_id"]) == ("r1", "b1") and "key" not in batch
    assert batch["timestamp"].endswith("+00:00")
    item = json.loads(item_line)
    assert (item["run_id"], item["batch_id"], item["key"]) == ("r1", "b1", "shop/a b.jpg")
    assert not {"run_id", "batch_id", "key"} & set(outside)
    assert current_context() == {}


def test_text_lines_show_the_ids_and_explicit_extra_wins() -> None:
    with log_context(run_id="r1", batch_id="b1"):
        line = TextFormatter().format(record("batch done"))
        explicit = TextFormatter().format(record("other run", run_id="r2"))
    assert " worker.tasks [run=r1 batch=b1]: batch done" in line
    assert "[run=r2 batch=b1]" in explicit
    assert TextFormatter().format(record("plain")).endswith(" worker.tasks: plain")


def test_one_line_per_record_even_with_newlines_and_exceptions() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed:\n%s", ("details",), None)
        entry.exc_info = sys.exc_info()
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed:\ndetails" and "ValueError: boom" in parsed["exception"]


def test_passwords_never_reach_a_line() -> None:
    url = "postgresql+psycopg://catalog:hunter2@db:5432/catalog and redis://:hunter2@redis:6379/0"
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record("cannot connect to %s (host=db password=hunter2)", url))
        assert "hunter2" not in line and "postgresql+psycopg://catalog:***@db:5432/catalog" in line
        assert "http://127.0.0.1:18333/bucket" in formatter.format(record("GET http://127.0.0.1:18333/bucket"))


def test_contexts_do_not_leak_between_threads() -> None:
    seen = {}

    def other() -> None:
        seen["other"] = dict(current_context())

    with log_context(run_id="mine"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen["other"] == {}
    with pytest.raises(TypeError, match="unknown log context fields"), log_context(password="x"):
        pass


def test_message_ids_tolerate_malformed_messages() -> None:
    assert message_ids({"run_id": "r", "batch_id": 7, "items": []}) == {"run_id": "r", "batch_id": "7"}
    assert message_ids({"items": []}) == {} and message_ids(["not", "a", "dict"]) == {}


@pytest.mark.parametrize("command", ["worker", "control-worker", "beat"])
def test_log_json_reaches_the_settings_and_quiets_celery_banners(command, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CATALOG_LOG_FORMAT", raising=False)
    monkeypatch.setenv("CATALOG_HOME", str(tmp_path))
    apply_log_json(build_parser().parse_args([command]))
    assert Settings.from_env().log_format == "text" and celery_flags(Settings.from_env()) == []
    apply_log_json(build_parser().parse_args([command, "--log-json"]))
    # in the environment, so forked pool processes log the same way
    assert Settings.from_env().log_format == "json" and celery_flags(Settings.from_env()) == ["--quiet"]


class NoModel:
    """An engine for batches whose images are all rejected before the model: it is never asked."""

    model_version = "no-model"

    def enrich(self, images: list) -> list:
        raise AssertionError("no image should reach the model")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.services
def test_the_batch_task_tags_batch_and_item_lines(s3, database_url, json_lines, monkeypatch) -> None:
    import worker.tasks as tasks

    s3.client.put_object(Bucket=s3.bucket, Key="shop/notes.png", Body=b"this is not an image")
    etag = s3.client.head_object(Bucket=s3.bucket, Key="shop/notes.png")["ETag"].strip('"')
    sessions = make_session_factory(database_url)
    with sessions.begin() as session:
        run_id = create_run(session, bucket=s3.bucket, prefix="", model_version=NoModel.model_version)
        refs = [ItemRef(s3.bucket, "shop/notes.png", etag), ItemRef(s3.bucket, "shop/gone.jpg", "deleted")]
        ids = add_ledger_items(session, run_id, refs)
        mark_enqueued(session, run_id)
    context = BatchContext(engine_provider=NoModel, s3=s3.client, sessions=sessions)
    monkeypatch.setattr(tasks, "batch_context", lambda: context)
    batch_id = uuid.uuid4().hex
    items = [{"item_id": i, "bucket": r.bucket, "key": r.key, "etag": r.etag} for i, r in zip(ids, refs, strict=True)]

    result = tasks.enrich_batch.apply(kwargs={"message": {"run_id": run_id, "batch_id": batch_id, "items": items}})

    assert result.get()["dead_lettered"] == 2
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("run_id") == run_id]
    assert all(line["batch_id"] == batch_id for line in ours)
    per_item = {line["key"]: line["message"] for line in ours if "key" in line}
    assert set(per_item) == {"shop/notes.png", "shop/gone.jpg"}
    assert all(message.startswith("dead-lettered: bad image") for message in per_item.values())
    summary = [line for line in ours if line["logger"] == "worker.tasks"]
    assert summary and "2 dead-lettered" in summary[-1]["message"] and "key" not in summary[-1]
    sessions.kw["bind"].dispose()
