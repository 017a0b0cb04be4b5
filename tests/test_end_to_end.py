"""The whole pipeline with real processes: S3 -> `enqueue` -> Redis -> `catalog worker` -> PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from catalog_enrich.validation import validate_attributes
from vlm.data.synth import synth_records

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: objects in the bucket; a few keys carry characters that break naive URL or shell handling
IMAGES = 120
ODD_KEYS = [
    "odd/a key with spaces.jpg",
    "odd/ünïcødé 'quoted' \"double\".jpg",
    "odd/hash#question?.jpg",
    "odd/percent%20plus+sign.jpg",
]


def pipeline_env(service_env, database_url, broker_url, trained_model, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "AWS_"))}
    return keep | {
        "CATALOG_HOME": str(home),
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_BROKER_URL": broker_url,
        "CATALOG_BASE_MODEL": str(trained_model.base),
        "CATALOG_ADAPTER": str(trained_model.adapter),
        "CATALOG_QUANTIZATION": "none",
        "CATALOG_BATCH_SIZE": "16",
        "AWS_ENDPOINT_URL_S3": service_env["AWS_ENDPOINT_URL_S3"],
        "AWS_ACCESS_KEY_ID": service_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": service_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": service_env.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def enqueue(bucket: str, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "producer.cli", "--bucket", bucket, "--wait", "--json", "--timeout", "600"]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=700, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)


@pytest.fixture
def worker(tmp_path, service_env, database_url, broker_url, trained_model):
    env = pipeline_env(service_env, database_url, broker_url, trained_model, tmp_path)
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed after the worker stops
    process = subprocess.Popen(
        [sys.executable, "-m", "catalog_enrich.cli", "worker", "--name", "e2e@%h", "--loglevel", "INFO"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    yield env, process
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()
    print((tmp_path / "worker.log").read_text()[-3000:])


def test_every_object_becomes_exactly_one_valid_catalog_row(s3, worker, database_url):
    env, process = worker
    records = list(synth_records(IMAGES - len(ODD_KEYS), 31))
    keys = [f"shop/{r['articleType']}/{r['id']}.jpg" for r in records] + ODD_KEYS
    bodies = [r["image"]["bytes"] for r in records] + [records[i]["image"]["bytes"] for i in range(len(ODD_KEYS))]
    for key, body in zip(keys, bodies, strict=True):
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    s3.client.put_object(Bucket=s3.bucket, Key="shop/readme.txt", Body=b"not an image")

    first = enqueue(s3.bucket, env)
    assert process.poll() is None, "the worker died"
    assert (first["listed"], first["enqueued"], first["status"]) == (IMAGES, IMAGES, "completed")
    assert (first["done"], first["dead_lettered"]) == (IMAGES, 0)

    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT key, attributes, product_type, model_version FROM catalog WHERE bucket = :b"),
            {"b": s3.bucket},
        ).all()
    assert sorted(row.key for row in rows) == sorted(keys)
    for row in rows:
        assert validate_attributes(row.attributes) == row.attributes
        assert row.attributes["product_type"] == row.product_type
    assert len({row.model_version for row in rows}) == 1

    second = enqueue(s3.bucket, env)
    assert (second["listed"], second["skipped"], second["enqueued"]) == (IMAGES, IMAGES, 0)
    assert second["status"] == "completed"
    engine.dispose()
