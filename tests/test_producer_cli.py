"""``enqueue`` as a user runs it, in a subprocess: one-line errors, exit statuses, and no model code loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from live_processes import client_env
from sqlalchemy import create_engine, func, pool, select

from db.models import EnrichmentRun

pytestmark = pytest.mark.services

#: top-level packages the producer must never load
MODEL_PACKAGES = {"torch", "transformers", "peft", "bitsandbytes", "worker", "vlm"}

#: runs ``enqueue`` in-process and prints which model packages ended up imported
PROBE = """
import json, sys
from producer.cli import main
code = main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


@pytest.fixture
def env(tmp_path: Path, database_url: str, broker_url: str, service_env: dict[str, str]) -> dict[str, str]:
    return client_env(tmp_path, service_env, database_url, broker_url)


def enqueue(env: dict[str, str], *args: str, **changes: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer.cli", *args]
    return subprocess.run(command, env=env | changes, capture_output=True, text=True, timeout=60, check=False)


def run_count(database_url: str) -> int:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(EnrichmentRun))


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("enqueue: ") and expected in lines[0], lines[0]


def test_importing_the_producer_loads_no_model_code() -> None:
    modules = ["producer." + path.stem for path in Path("producer").glob("*.py") if path.stem != "__init__"]
    code = f"import sys\nimport {', '.join(modules)}\nprint(','.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in result.stdout.strip().split(",")}
    assert not loaded & MODEL_PACKAGES


def test_a_whole_run_loads_no_model_code(env: dict[str, str], s3: Any) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="a.jpg", Body=b"x")
    command = [sys.executable, "-c", PROBE, "--bucket", s3.bucket, "--json", "--wait", "--timeout", "0.2"]
    result = subprocess.run(
        command, env=env, input=json.dumps(sorted(MODEL_PACKAGES)), capture_output=True, text=True, check=False
    )
    probe = json.loads(result.stderr.strip().splitlines()[-1])
    assert probe == {"code": 3, "loaded": []}
    assert json.loads(result.stdout)["enqueued"] == 1


def test_missing_bucket(env: dict[str, str], s3: Any) -> None:
    assert_one_line_error(enqueue(env, "--bucket", s3.bucket + "-missing"), "does not exist")


def test_wrong_secret(env: dict[str, str], s3: Any) -> None:
    if not env["AWS_SECRET_ACCESS_KEY"]:
        pytest.skip("the S3 server checks no credentials")
    result = enqueue(env, "--bucket", s3.bucket, AWS_SECRET_ACCESS_KEY="not-the-secret")
    assert_one_line_error(result, "denied")


def test_unreachable_broker_records_nothing(env: dict[str, str], s3: Any, database_url: str) -> None:
    before = run_count(database_url)
    result = enqueue(env, "--bucket", s3.bucket, CATALOG_BROKER_URL="redis://127.0.0.1:1/0")
    assert_one_line_error(result, "cannot reach broker redis://127.0.0.1:1/0")
    assert run_count(database_url) == before


def test_unreachable_database(env: dict[str, str], s3: Any) -> None:
    result = enqueue(env, "--bucket", s3.bucket, CATALOG_DATABASE_URL="postgresql://u:secret@127.0.0.1:1/catalog")
    assert_one_line_error(result, "cannot use database postgresql+psycopg://u:***@127.0.0.1:1/catalog")
    assert "secret" not in result.stderr


def test_unknown_run(env: dict[str, str]) -> None:
    assert_one_line_error(enqueue(env, "--resume", "no-such-run"), "no run 'no-such-run'")


def test_settings_error(env: dict[str, str], s3: Any) -> None:
    result = enqueue(env, "--bucket", s3.bucket, CATALOG_BATCH_SIZE="zero")
    assert result.returncode == 1 and "CATALOG_BATCH_SIZE" in result.stderr and "Traceback" not in result.stderr


def test_bucket_or_resume_is_required(env: dict[str, str]) -> None:
    result = enqueue(env)
    assert result.returncode == 2 and "--bucket" in result.stderr


def test_dry_run_text_summary(env: dict[str, str], s3: Any, database_url: str) -> None:
    for key in ("x/1.jpg", "x/2.jpg", "x/3.txt"):
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"x")
    before = run_count(database_url)
    result = enqueue(env, "--bucket", s3.bucket, "--dry-run", CATALOG_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dry run: would enqueue 2 images in 1 batches")
    assert run_count(database_url) == before
