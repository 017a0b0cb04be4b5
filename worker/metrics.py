"""Prometheus metrics of an inference worker, served on CATALOG_METRICS_PORT (unset: not served).

The batch code stays free of metrics: ``instrumented`` wraps a BatchContext's engine, S3 client and
session factory so generation, fetching and database time are measured around the core, and the task
records each delivery's outcome with ``observe_delivery`` and ``observe_report``. Metrics live in the
process that runs the tasks (the prefork child, or the solo worker itself), which is also the process
that serves them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.batch import BatchContext, BatchReport

log = logging.getLogger(__name__)

#: the variable naming the port metrics are served on; unset or empty: no metrics server
PORT_VARIABLE = "CATALOG_METRICS_PORT"

#: latency buckets from a fast S3 GET to a slow GPU batch, seconds
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

#: queue waits range from milliseconds to hours when a large run is enqueued at once
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200)

IMAGES_ENRICHED = Counter("catalog_images_enriched", "Images enriched and written to the catalog")
IMAGES_DEAD_LETTERED = Counter(
    "catalog_images_dead_lettered", "Images given up on, by the family of their reason", ["reason"]
)
IMAGES_SKIPPED = Counter("catalog_images_skipped", "Images of a delivery already final (a repeated delivery)")
BATCH_RETRIES = Counter("catalog_batch_retries", "Batches retried after a passing S3 or database failure")
BATCH_IMAGES = Histogram(
    "catalog_batch_images", "Image references per batch message", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
BATCH_SECONDS = Histogram("catalog_batch_seconds", "Wall time of one batch delivery", buckets=SECONDS_BUCKETS)
GENERATE_SECONDS = Histogram(
    "catalog_generate_seconds", "Model time per batch (all attempts of every image)", buckets=SECONDS_BUCKETS
)
FETCH_SECONDS = Histogram(
    "catalog_fetch_seconds", "S3 GET of one image, request to body closed", buckets=SECONDS_BUCKETS
)
DB_SECONDS = Histogram(
    "catalog_db_transaction_seconds", "One database transaction of a batch (claim or write)", buckets=SECONDS_BUCKETS
)
QUEUE_WAIT_SECONDS = Histogram(
    "catalog_queue_wait_seconds", "From the producer sending a batch to a worker starting it", buckets=WAIT_BUCKETS
)


class GpuMemoryCollector(Collector):
    """GPU memory per device, reported only once the model has initialised CUDA in this process."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Allocated and reserved bytes per device; nothing when CUDA is not in use here."""
        # torch is looked up, never imported: a process without the model must not load it, and asking an
        # uninitialised CUDA for memory would initialise it (fatal in a parent that later forks)
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return
        gauge = GaugeMetricFamily("catalog_gpu_memory_bytes", "GPU memory held by PyTorch", labels=["device", "kind"])
        for device in range(torch.cuda.device_count()):
            gauge.add_metric([str(device), "allocated"], torch.cuda.memory_allocated(device))
            gauge.add_metric([str(device), "reserved"], torch.cuda.memory_reserved(device))
        yield gauge


REGISTRY.register(GpuMemoryCollector())


def reason_family(reason: str) -> str:
    """A dead-letter reason family with its numbers replaced by N, so the label set stays small."""
    return re.sub(r"\d+", "N", reason.split(":")[0]).strip()[:60] or "unknown"


def observe_delivery(message: Mapping[str, Any], images: int, *, retries: int) -> None:
    """Record a batch's size and, on its first delivery, how long it waited since the producer sent it."""
    BATCH_IMAGES.observe(images)
    sent_at = message.get("sent_at")
    if retries or not isinstance(sent_at, str):
        # a retry waited for its own countdown, not in the queue
        return
    try:
        sent = datetime.fromisoformat(sent_at)
    except ValueError:
        return
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    QUEUE_WAIT_SECONDS.observe(max(0.0, (datetime.now(UTC) - sent).total_seconds()))


def observe_report(report: BatchReport, seconds: float) -> None:
    """Count one delivery's outcomes and its wall time."""
    BATCH_SECONDS.observe(seconds)
    IMAGES_ENRICHED.inc(report.done)
    IMAGES_SKIPPED.inc(report.skipped)
    for family, count in report.reasons.items():
        IMAGES_DEAD_LETTERED.labels(reason_family(family)).inc(count)


class _TimedEngine:
    """An engine whose ``enrich`` calls are timed."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    @property
    def model_version(self) -> str:
        """The wrapped engine's model version."""
        return self._engine.model_version

    def enrich(self, images: Any) -> list[Any]:
        """Run the wrapped engine, timing it."""
        with GENERATE_SECONDS.time():
            return self._engine.enrich(images)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class _TimedBody:
    """An S3 body that records the whole GET's time when it is closed."""

    def __init__(self, body: Any, started: float) -> None:
        self._body, self._started = body, started

    def read(self, *args: Any) -> bytes:
        """Read from the wrapped body."""
        return self._body.read(*args)

    def close(self) -> None:
        """Close the wrapped body and record the GET's time."""
        self._body.close()
        FETCH_SECONDS.observe(time.perf_counter() - self._started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class _TimedS3:
    """An S3 client whose ``get_object`` calls are timed until their body is closed."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        """GET an object; its body records the time when closed."""
        started = time.perf_counter()
        response = self._client.get_object(**kwargs)
        return {**response, "Body": _TimedBody(response["Body"], started)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _TimedSessions:
    """A session factory whose ``begin()`` transactions are timed, commit included."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory

    @contextmanager
    def begin(self) -> Iterator[Any]:
        """One timed transaction."""
        started = time.perf_counter()
        try:
            with self._factory.begin() as session:
                yield session
        finally:
            DB_SECONDS.observe(time.perf_counter() - started)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._factory(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)


def instrumented(context: BatchContext) -> BatchContext:
    """``context`` with its engine, S3 client and sessions timed into the histograms above."""
    provider = context.engine_provider
    return replace(
        context,
        engine_provider=lambda: _TimedEngine(provider()),
        s3=_TimedS3(context.s3),
        sessions=_TimedSessions(context.sessions),  # type: ignore[arg-type]
    )


def start_metrics_server(environ: Mapping[str, str] | None = None) -> int | None:
    """Serve /metrics on CATALOG_METRICS_PORT if it is set; the port, or None when not serving."""
    environ = os.environ if environ is None else environ
    raw = environ.get(PORT_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
        start_http_server(port)
    except (ValueError, OSError) as error:
        # metrics are an aid: a taken port or a typo must not stop the worker from enriching
        log.warning("not serving metrics on %s=%r: %s", PORT_VARIABLE, raw, error)
        return None
    log.info("serving Prometheus metrics on port %d", port)
    return port
