"""The end-to-end demo: from nothing to enriched, queryable catalog rows on one CPU machine.

Each step reuses what an earlier run left under CATALOG_HOME (servers, the tiny model, its adapter), so a
second run only enqueues what is new, which is nothing: the catalog already holds every image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from sqlalchemy import text

from catalog_enrich.settings import Settings
from catalog_enrich.worker_process import CATALOG_WORKER, start_worker_process, stop_worker_process

#: the bucket the demo fills and enriches
DEMO_BUCKET = "products"

#: images uploaded to the bucket; drawn with a seed the adapter never saw in training
DEMO_IMAGES = 200
DEMO_SEED = 99

#: training set of the demo adapter
TRAIN_IMAGES = 600
TRAIN_SEED = 1

#: how long the demo waits for the worker to finish the run
RUN_TIMEOUT_S = 900

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def start_services(home: Path, say: Say) -> None:
    """Start the local servers (unless the environment names others) and export their variables."""
    from catalog_enrich.services import stack

    for result in stack.up(home):
        say(f"{result.status.name}: {result.action} {result.status.url or ''}".rstrip())
    os.environ.update(stack.env(home))


def ensure_model(home: Path, say: Say) -> tuple[Path, Path]:
    """The tiny base model and its trained adapter, built and trained on first use."""
    from vlm.architectures import DEFAULT_ARCHITECTURE, build_tiny_model
    from vlm.data.dataset import write_parquet
    from vlm.data.synth import synth_records
    from vlm.training import TrainingSettings, train_adapter

    models = home / "models"
    base, adapter = models / "tiny-base", models / "tiny-adapter"
    if not (base / "config.json").is_file():
        say(f"building a tiny {DEFAULT_ARCHITECTURE} model in {base}")
        build_tiny_model(DEFAULT_ARCHITECTURE, base)
    if not (adapter / "adapter_config.json").is_file():
        data = models / "train.parquet"
        say(f"drawing {TRAIN_IMAGES} labelled training images")
        write_parquet(synth_records(TRAIN_IMAGES, TRAIN_SEED), data)
        say("training the LoRA adapter (about 2-4 minutes on 2 CPU cores)")
        metadata = train_adapter(str(base), data, adapter, TrainingSettings())
        say(f"adapter trained in {metadata['train_seconds']} s")
    return base, adapter


def upload_images(settings: Settings, say: Say) -> dict[str, dict[str, str]]:
    """Put the demo images in the bucket (once) and return their labels by object key."""
    from catalog_enrich.schema import labels_from_record
    from vlm.data.dataset import image_relpath
    from vlm.data.synth import synth_records

    s3 = boto3.client("s3", **settings.s3.client_kwargs())
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if DEMO_BUCKET not in existing:
        s3.create_bucket(Bucket=DEMO_BUCKET)
    labels: dict[str, dict[str, str]] = {}
    present = {
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DEMO_BUCKET)
        for obj in page.get("Contents", [])
    }
    uploaded = 0
    for record in synth_records(DEMO_IMAGES, DEMO_SEED):
        key = image_relpath(record)
        labels[key] = labels_from_record(record)
        if key not in present:
            s3.put_object(Bucket=DEMO_BUCKET, Key=key, Body=record["image"]["bytes"], ContentType="image/jpeg")
            uploaded += 1
    say(f"bucket {DEMO_BUCKET}: {len(labels)} images ({uploaded} uploaded now)")
    return labels


def start_worker(home: Path, say: Say) -> subprocess.Popen:
    """A real worker process, logging to CATALOG_HOME/logs/demo-worker.log."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    say(f"starting a worker (log: {logs / 'demo-worker.log'})")
    return start_worker_process([*CATALOG_WORKER, "--name", "demo@%h"], os.environ, logs / "demo-worker.log")


def run_enqueue(say: Say) -> dict:
    """``enqueue --bucket products --wait --json`` as a user would type it; its JSON summary."""
    say(f"enqueue --bucket {DEMO_BUCKET} --wait")
    command = [sys.executable, "-m", "producer.cli", "--bucket", DEMO_BUCKET, "--wait", "--json"]
    command += ["--timeout", str(RUN_TIMEOUT_S)]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy(), check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"enqueue exited with {finished.returncode}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main(say: Say = _say) -> int:
    """Run the whole demo; 0 when every image ended up in the catalog."""
    from catalog_enrich.catalog_report import print_catalog_report

    started = time.monotonic()
    home = Settings.from_env().home
    start_services(home, say)
    settings = Settings.from_env()
    import migrations

    migrations.upgrade(settings.require_database_url())
    say("database migrated")
    base, adapter = ensure_model(home, say)
    os.environ["CATALOG_BASE_MODEL"], os.environ["CATALOG_ADAPTER"] = str(base), str(adapter)
    settings = Settings.from_env()
    labels = upload_images(settings, say)
    worker = start_worker(home, say)
    try:
        summary = run_enqueue(say)
    finally:
        stop_worker_process(worker)
    say(f"run {summary['run_id']}: {json.dumps({k: v for k, v in summary.items() if k != 'run_id'})}")
    from db.engine import make_engine

    engine = make_engine(settings.require_database_url())
    with engine.connect() as connection:
        accuracy = print_catalog_report(connection, DEMO_BUCKET, labels)
        enriched = connection.execute(
            text("SELECT count(*) FROM catalog WHERE bucket = :bucket"), {"bucket": DEMO_BUCKET}
        ).scalar_one()
    say(f"done in {time.monotonic() - started:.0f} s: {enriched}/{len(labels)} images in the catalog")
    say('query it yourself: eval "$(catalog services env)"; psql "${CATALOG_DATABASE_URL/+psycopg/}"')
    say("stop the servers with: catalog services down")
    return 0 if enriched == len(labels) and accuracy else 1
