"""The producer at scale: keys per second and peak memory of ``enqueue`` over buckets of growing size.

``enqueue --bucket B --json`` runs as a user would start it, in its own process, against a scratch
database and Redis database; its peak resident set is the kernel's high-water mark of that process
(``ru_maxrss`` would not do: a child inherits its parent's size in it). Listing is paged, so the peak
should stay flat as the bucket grows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from catalog_enrich.benchmark.scratch import (
    Services,
    ensure_bucket,
    flush_redis,
    scratch_database,
    scratch_redis,
    subprocess_env,
)
from vlm.benchmark.memory import MIB, peak_rss_bytes

#: object counts measured by default, and with ``--quick``
COUNTS = (10_000, 100_000)
QUICK_COUNTS = (2_000, 10_000)

#: the body of every listed object: the producer never reads it
TINY_BODY = b"\xff\xd8"

#: seconds between two looks at the producer's memory
POLL_S = 0.02

#: the smaller measurement lists this prefix of the shared bucket, the larger one the whole bucket
SMALL_PREFIX = "small/"


def bucket_name(counts: Sequence[int]) -> str:
    """The bench bucket for a pair of counts (reused by later runs with the same counts)."""
    return f"bench-keys-{min(counts)}-{max(counts)}"


def bench_keys(counts: Sequence[int]) -> Iterator[tuple[str, bytes]]:
    """``max(counts)`` image keys, the first ``min(counts)`` of them under ``SMALL_PREFIX``."""
    small = min(counts)
    for number in range(max(counts)):
        folder = SMALL_PREFIX if number < small else "large/"
        yield f"{folder}{number % 97:02d}/{number:08d}.jpg", TINY_BODY


def run_enqueue(arguments: Sequence[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run ``enqueue ARGUMENTS --json``; its summary, wall time and peak resident set."""
    command = [sys.executable, "-m", "producer.cli", *arguments, "--json"]
    peak = 0
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
        try:
            while process.poll() is None:
                # the kernel's high-water mark only grows, so the last look before exit is the peak
                # (give or take the final milliseconds); polling is cheap next to what is measured
                peak = max(peak, peak_rss_bytes(process.pid) or 0)
                if time.perf_counter() - started > timeout_s:
                    process.kill()
                time.sleep(POLL_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read().decode(), stderr.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"enqueue exited with {process.returncode}: {errors.strip()[-500:]}")
    summary = json.loads(output.strip().splitlines()[-1])
    return {"summary": summary, "seconds": seconds, "peak_rss_mb": peak / MIB}


def measure_producer(
    services: Services, counts: Sequence[int] = COUNTS, *, batch_size: int = 16, timeout_s: float = 900
) -> dict[str, Any]:
    """Enqueue ``min(counts)`` and ``max(counts)`` fresh objects; rates and peak memory of each run."""
    client = services.s3_client()
    bucket = bucket_name(counts)
    started = time.perf_counter()
    uploaded = ensure_bucket(client, bucket, max(counts), lambda: bench_keys(counts))
    upload_s = time.perf_counter() - started
    by_count: dict[str, dict[str, Any]] = {}
    with scratch_redis(services.broker_url) as broker_url:
        for count in sorted(counts):
            prefix = SMALL_PREFIX if count == min(counts) else ""
            # a fresh database per run: nothing is already enriched, every key is recorded and sent
            with scratch_database(services.database_url) as database_url:
                env = subprocess_env(services, database_url, broker_url, {"CATALOG_BASE_MODEL": "bench/producer"})
                arguments = ["--bucket", bucket, "--prefix", prefix, "--batch-size", str(batch_size)]
                run = run_enqueue(arguments, env, timeout_s)
            flush_redis(broker_url)
            enqueued = run["summary"]["enqueued"]
            if enqueued != count:
                raise RuntimeError(f"enqueue sent {enqueued} of {count} objects")
            by_count[str(count)] = {
                "keys_per_s": count / run["seconds"],
                "seconds": run["seconds"],
                "peak_rss_mb": run["peak_rss_mb"],
                "batches": run["summary"]["batches"],
            }
    largest = by_count[str(max(counts))]
    return {
        "producer_keys_per_s": largest["keys_per_s"],
        "producer_peak_rss_mb": {count: figures["peak_rss_mb"] for count, figures in by_count.items()},
        "producer_by_count": by_count,
        "bucket": bucket,
        "bucket_upload_s": upload_s if uploaded else None,
    }
