"""End-to-end efficiency: images per second through the whole pipeline over the engine's own rate.

The same images go through S3 -> ``enqueue`` -> Redis -> a real ``catalog worker`` process -> PostgreSQL,
and, separately, straight through the engine in this process (fetched and decoded as the worker does,
in the same batches, with the same decoding settings). The ratio is the share of the engine's speed the
pipeline keeps; what it loses is queueing, fetching, decoding and database writes.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog_enrich.benchmark.producer_rate import run_enqueue
from catalog_enrich.benchmark.scratch import Services, ensure_bucket, scratch_database, scratch_redis, subprocess_env
from catalog_enrich.worker_process import CATALOG_WORKER, start_worker_process, stop_worker_process

#: images the warm-up run sends first, so the measured run finds the worker's model loaded and warm
WARMUP_IMAGES = 16

#: seed of the benchmark's synthetic images
IMAGE_SEED = 77

#: how the engine runs, in the worker (as settings) and in this process alike
DECODING = "constrained"
QUANTIZATION = "none"


def bucket_name(images: int) -> str:
    """The bucket holding ``images`` measured images and the warm-up images."""
    return f"bench-images-{images}"


def image_objects(images: int) -> Iterator[tuple[str, bytes]]:
    """The warm-up images under ``warmup/``, then the measured ones under ``measure/``."""
    from vlm.data.synth import synth_records

    for number, record in enumerate(synth_records(WARMUP_IMAGES + images, IMAGE_SEED)):
        folder = "warmup" if number < WARMUP_IMAGES else "measure"
        yield f"{folder}/{number:06d}.jpg", record["image"]["bytes"]


def engine_seconds(
    services: Services, bucket: str, base: str, batch_size: int, precision: str = "auto"
) -> tuple[float, int]:
    """Seconds the engine alone takes for the ``measure/`` images, batched in listing order; and their count."""
    from vlm.engine import Engine
    from vlm.loading import load_model
    from worker.fetch import ObjectRef, fetch_objects
    from worker.images import decode_image

    client = services.s3_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))
    fetched = fetch_objects(client, [ObjectRef(bucket, key, "") for key in keys], max_bytes=1 << 24)
    images = {item.ref.key: decode_image(item.data) for item in fetched if item.data is not None}
    warmup = [image for key, image in images.items() if key.startswith("warmup/")]
    measured = [image for key, image in images.items() if key.startswith("measure/")]
    engine = Engine(load_model(base, None, quantization=QUANTIZATION, precision=precision), decoding=DECODING)
    engine.enrich(warmup)
    started = time.perf_counter()
    for start in range(0, len(measured), batch_size):
        engine.enrich(measured[start : start + batch_size])
    return time.perf_counter() - started, len(measured)


def _finished_at(database_url: str, run_id: str) -> float | None:
    """When the run was completed (epoch seconds), as the worker that finished it recorded."""
    from db.engine import make_engine
    from db.models import EnrichmentRun

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            runs = EnrichmentRun.__table__
            moment = connection.execute(select(runs.c.finished_at).where(runs.c.id == run_id)).scalar_one()
    finally:
        engine.dispose()
    return moment.timestamp() if moment else None


def pipeline_seconds(
    services: Services, bucket: str, base: str, batch_size: int, timeout_s: float, precision: str = "auto"
) -> dict[str, Any]:
    """Seconds from starting ``enqueue`` on ``measure/`` to the run's completion, with a warm worker."""
    with scratch_redis(services.broker_url) as broker_url, scratch_database(services.database_url) as database_url:
        extra = {
            "CATALOG_BASE_MODEL": base,
            "CATALOG_QUANTIZATION": QUANTIZATION,
            "CATALOG_PRECISION": precision,
            "CATALOG_DECODING": DECODING,
            "CATALOG_BATCH_SIZE": str(batch_size),
        }
        env = subprocess_env(services, database_url, broker_url, extra)
        with tempfile.TemporaryDirectory() as folder:
            log_path = Path(folder) / "worker.log"
            command = [*CATALOG_WORKER, "--name", "bench@%h", "--loglevel", "WARNING"]
            worker = start_worker_process(command, env, log_path)
            try:
                common = ["--bucket", bucket, "--wait", "--timeout", str(timeout_s)]
                run_enqueue([*common, "--prefix", "warmup/"], env, timeout_s + 60)
                launched = time.time()
                run = run_enqueue([*common, "--prefix", "measure/"], env, timeout_s + 60)
            except RuntimeError as error:
                raise RuntimeError(f"{error}; worker log: {log_path.read_text()[-1500:]}") from error
            finally:
                stop_worker_process(worker)
        summary = run["summary"]
        finished = _finished_at(database_url, summary["run_id"])
    seconds = finished - launched if finished else run["seconds"]
    return {"seconds": seconds, "done": summary["done"], "dead_lettered": summary["dead_lettered"]}


def measure_pipeline(
    services: Services,
    base: str,
    *,
    images: int = 64,
    batch_size: int = 16,
    timeout_s: float = 900,
    precision: str = "auto",
) -> dict[str, Any]:
    """Pipeline images/s over engine images/s on the same images, batch size and decoding settings."""
    bucket = bucket_name(images)
    ensure_bucket(services.s3_client(), bucket, images + WARMUP_IMAGES, lambda: image_objects(images))
    alone_s, count = engine_seconds(services, bucket, base, batch_size, precision)
    # the in-process model goes before the worker loads its own: the two must not share the cores
    gc.collect()
    through = pipeline_seconds(services, bucket, base, batch_size, timeout_s, precision)
    engine_rate, pipeline_rate = count / alone_s, count / through["seconds"]
    return {
        "pipeline_efficiency": pipeline_rate / engine_rate,
        "pipeline_images_per_s": pipeline_rate,
        "engine_images_per_s": engine_rate,
        "pipeline_seconds": through["seconds"],
        "engine_seconds": alone_s,
        "images": count,
        "batch_size": batch_size,
        "decoding": DECODING,
        "done": through["done"],
        "dead_lettered": through["dead_lettered"],
    }
