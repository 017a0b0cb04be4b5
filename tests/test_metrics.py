"""Worker metrics: one batch through the worker's code path (real PostgreSQL and S3), read from the registry."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from catalog_enrich.schema import SCHEMA_VERSION, labels_from_record
from db import ItemRef, add_ledger_items, create_run, make_session_factory
from db.runs import mark_enqueued
from vlm.data.synth import synth_records
from worker import metrics
from worker.batch import BatchContext, BatchMessage, BatchReport, process_batch


@dataclass(frozen=True)
class StubResult:
    """The fields of an engine result the batch reads."""

    ok: bool
    attributes: dict[str, str]
    raw_output: str
    model_version: str = "stub-1"
    schema_version: str = SCHEMA_VERSION
    attempts: int = 1
    seconds: float = 0.01
    reason: str | None = None


class StubEngine:
    """Answers with fixed labels; every third image gets an invalid answer."""

    model_version = "stub-1"

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def enrich(self, images: list[Any]) -> list[StubResult]:
        return [
            StubResult(False, {}, "<nonsense>", attempts=3, reason="not JSON")
            if n % 3 == 2
            else StubResult(True, self.labels, "{}")
            for n, _ in enumerate(images)
        ]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_reason_families_are_few() -> None:
    assert metrics.reason_family("invalid model output after 3 attempts") == "invalid model output after N attempts"
    assert metrics.reason_family("gave up after 5 deliveries") == "gave up after N deliveries"
    assert metrics.reason_family("bad image: object is larger than 20971520 bytes") == "bad image"
    assert metrics.reason_family("") == "unknown"


def test_queue_wait_uses_sent_at_on_first_delivery_only() -> None:
    count = sample("catalog_queue_wait_seconds_count")
    total = sample("catalog_queue_wait_seconds_sum")
    sent = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    metrics.observe_delivery({"sent_at": sent}, 16, retries=0)
    assert sample("catalog_queue_wait_seconds_count") == count + 1
    assert 29 < sample("catalog_queue_wait_seconds_sum") - total < 60
    metrics.observe_delivery({"sent_at": sent}, 16, retries=1)
    metrics.observe_delivery({"sent_at": "yesterday"}, 16, retries=0)
    metrics.observe_delivery({}, 16, retries=0)
    assert sample("catalog_queue_wait_seconds_count") == count + 1
    assert sample("catalog_batch_images_bucket", {"le": "16.0"}) >= 4


def test_unknown_message_keys_are_ignored() -> None:
    payload = {"run_id": "r", "batch_id": "b", "items": [], "sent_at": "2025-01-01T00:00:00+00:00", "x": 1}
    assert BatchMessage.from_payload(payload) == BatchMessage("r", "b", ())


@pytest.mark.services
def test_batch_code_path_fills_the_registry(s3, database_url: str) -> None:
    records = list(synth_records(6, 3))
    refs = []
    for record in records:
        key = f"m/{record['id']}.jpg"
        etag = s3.client.put_object(Bucket=s3.bucket, Key=key, Body=record["image"]["bytes"])["ETag"].strip('"')
        refs.append(ItemRef(s3.bucket, key, etag))
    s3.client.put_object(Bucket=s3.bucket, Key="m/empty.jpg", Body=b"")
    refs.append(ItemRef(s3.bucket, "m/empty.jpg", "e"))
    sessions = make_session_factory(database_url)
    with sessions.begin() as session:
        run_id = create_run(session, bucket=s3.bucket, prefix="m/", model_version="stub-1")
        ids = add_ledger_items(session, run_id, refs)
        mark_enqueued(session, run_id)
    items = [{"item_id": i, "bucket": r.bucket, "key": r.key, "etag": r.etag} for i, r in zip(ids, refs, strict=True)]
    message = BatchMessage.from_payload({"run_id": run_id, "batch_id": uuid.uuid4().hex, "items": items})
    engine = StubEngine(labels_from_record(records[0]))
    context = metrics.instrumented(BatchContext(engine_provider=lambda: engine, s3=s3.client, sessions=sessions))

    before = {
        name: sample(name)
        for name in (
            "catalog_images_enriched_total",
            "catalog_generate_seconds_count",
            "catalog_fetch_seconds_count",
            "catalog_db_transaction_seconds_count",
            "catalog_batch_seconds_count",
        )
    }
    invalid = {"reason": "invalid model output after N attempts"}
    bad = {"reason": "bad image"}
    dead_before = (
        sample("catalog_images_dead_lettered_total", invalid),
        sample("catalog_images_dead_lettered_total", bad),
    )
    report = process_batch(message, context)
    metrics.observe_report(report, 1.5)
    sessions.kw["bind"].dispose()

    assert (report.done, report.dead_lettered) == (4, 3)
    delta = {name: sample(name) - value for name, value in before.items()}
    assert delta == {
        "catalog_images_enriched_total": 4,
        "catalog_generate_seconds_count": 1,
        "catalog_fetch_seconds_count": 7,
        "catalog_db_transaction_seconds_count": 2,
        "catalog_batch_seconds_count": 1,
    }
    assert sample("catalog_images_dead_lettered_total", invalid) - dead_before[0] == 2
    assert sample("catalog_images_dead_lettered_total", bad) - dead_before[1] == 1
    # a repeated delivery finds every item final: skipped, nothing generated
    skipped = sample("catalog_images_skipped_total")
    metrics.observe_report(BatchReport("b", skipped=7), 0.1)
    assert sample("catalog_images_skipped_total") - skipped == 7


def test_metrics_server_serves_the_registry(monkeypatch) -> None:
    assert metrics.start_metrics_server({}) is None
    assert metrics.start_metrics_server({metrics.PORT_VARIABLE: "not-a-port"}) is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = []
    real_start = metrics.start_http_server

    def keep(*args: Any, **kwargs: Any) -> Any:
        servers.append(real_start(*args, **kwargs))
        return servers[-1]

    monkeypatch.setattr(metrics, "start_http_server", keep)
    assert metrics.start_metrics_server({metrics.PORT_VARIABLE: str(port)}) == port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    assert "catalog_images_enriched_total" in body and "catalog_queue_wait_seconds_bucket" in body
