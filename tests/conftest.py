"""Shared fixtures: real PostgreSQL, Redis and S3 servers for the tests marked ``services``.

The servers are the project's own local services (``catalog_enrich.services``), started once under a fixed
folder and left running so the next test run starts in a fraction of a second; stop them with
``CATALOG_HOME=/tmp/catalog-enrich-test catalog services down``. Servers named by CATALOG_DATABASE_URL,
CATALOG_BROKER_URL or AWS_ENDPOINT_URL_S3 are used instead when those are set. Locally a server that cannot
be started skips its tests; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

#: in CI a missing server must fail the run, never hide tests behind a skip
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: where the test servers live between runs
TEST_HOME = Path(os.environ.get("CATALOG_TEST_HOME", "/tmp/catalog-enrich-test"))

#: ports of the test servers: apart from `catalog services up`'s defaults so both can run at once
#: one valid set of attributes, for tests that write catalog rows without a model
ATTRIBUTES = {
    "product_name": "Blue Denim Jacket",
    "product_type": "Jackets",
    "color": "Blue",
    "gender": "Men",
    "season": "Fall",
    "usage": "Casual",
}

TEST_PORTS = {"CATALOG_POSTGRES_PORT": "54339", "CATALOG_REDIS_PORT": "63791", "CATALOG_S3_PORT": "18353"}


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(f"service unavailable: {reason}")


@pytest.fixture(scope="session")
def service_env() -> dict[str, str]:
    """Client variables of running servers: the project's local test servers, or those given by env vars."""
    from catalog_enrich.services import stack
    from catalog_enrich.services.process import ServiceError

    environ = {**TEST_PORTS, **os.environ}
    try:
        stack.up(TEST_HOME, environ)
    except (ServiceError, OSError) as error:
        unavailable(str(error))
    variables = stack.env(TEST_HOME, environ)
    for name in ("CATALOG_DATABASE_URL", "CATALOG_BROKER_URL"):
        if os.environ.get(name):
            variables[name] = os.environ[name]
    if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        variables["AWS_ENDPOINT_URL_S3"] = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ["AWS_ENDPOINT_URL"]
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            if os.environ.get(name):
                variables[name] = os.environ[name]
    return variables


def _create_database(admin_url: str) -> tuple[str, Any]:
    """A new empty database on the server of ``admin_url``: its URL and a function that drops it."""
    from sqlalchemy import create_engine, make_url, pool, text

    name = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    with engine.connect() as connection:
        # CREATE/DROP DATABASE take no bound parameters; the name is generated above from a uuid
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


@pytest.fixture(scope="module")
def blank_database_url(service_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty database for this test module, dropped afterwards."""
    from catalog_enrich.settings import normalize_database_url

    admin_url = service_env.get("CATALOG_DATABASE_URL")
    if not admin_url:
        unavailable("no PostgreSQL")
    url, drop = _create_database(normalize_database_url(admin_url))
    yield url
    drop()


@pytest.fixture(scope="module")
def database_url(service_env: dict[str, str]) -> Iterator[str]:
    """A fresh database for this test module, migrated to the latest revision, dropped afterwards."""
    import migrations
    from catalog_enrich.settings import normalize_database_url

    admin_url = service_env.get("CATALOG_DATABASE_URL")
    if not admin_url:
        unavailable("no PostgreSQL")
    url, drop = _create_database(normalize_database_url(admin_url))
    migrations.upgrade(url)
    yield url
    drop()


@pytest.fixture(scope="session")
def broker_url(service_env: dict[str, str]) -> Iterator[str]:
    """A Redis URL with a logical database of its own (claimed so parallel runs never share one), empty."""
    import redis

    base = service_env.get("CATALOG_BROKER_URL")
    if not base:
        unavailable("no Redis")
    client = redis.Redis.from_url(base)
    # database 0 holds the claims; the test runs use 1..15 (every Redis has at least 16 databases)
    claims = (db for db in range(1, 16) if client.set(f"catalog-test:db:{db}", os.getpid(), nx=True, ex=6 * 3600))
    claimed = next(claims, None)
    if claimed is None:
        unavailable("every Redis test database is taken by another test run")
    url = urlunsplit(urlsplit(base)._replace(path=f"/{claimed}"))
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()
    client.delete(f"catalog-test:db:{claimed}")
    client.close()


@dataclass(frozen=True)
class S3Bucket:
    """A boto3 S3 client and a bucket created for one test."""

    client: Any
    bucket: str
    endpoint_url: str


@pytest.fixture
def s3(service_env: dict[str, str]) -> Iterator[S3Bucket]:
    """A fresh bucket on the S3 server, emptied and deleted afterwards."""
    import boto3

    endpoint = service_env.get("AWS_ENDPOINT_URL_S3")
    if not endpoint:
        unavailable("no S3 server")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=service_env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=service_env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=service_env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield S3Bucket(client, bucket, endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


#: training steps of the shared test adapter: enough for mostly valid free-mode output, cheap on 2 cores
TEST_ADAPTER_STEPS = 300

#: the sources whose change invalidates a cached test model
MODEL_SOURCES = (
    "vlm/architectures",
    "vlm/tokenizer.py",
    "vlm/prompting.py",
    "vlm/training.py",
    "vlm/lora.py",
    "vlm/data",
    "catalog_enrich/schema.py",
)


def _sources_digest() -> str:
    import hashlib

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for source in MODEL_SOURCES:
        path = root / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class TrainedModel:
    """The default tiny architecture and a LoRA adapter trained on synthetic products."""

    base: Path
    adapter: Path


@pytest.fixture(scope="session")
def trained_model() -> TrainedModel:
    """Built and trained once, then cached under the test home until the model code changes."""
    import fcntl

    from vlm.architectures import DEFAULT_ARCHITECTURE, build_tiny_model
    from vlm.data.dataset import write_parquet
    from vlm.data.synth import synth_records
    from vlm.training import TrainingSettings, train_adapter

    folder = TEST_HOME / "models" / _sources_digest()
    folder.mkdir(parents=True, exist_ok=True)
    base, adapter = folder / "base", folder / "adapter"
    with open(folder / ".lock", "w") as lock:
        # parallel test runs share the cache: the first builds, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (adapter / "adapter_config.json").is_file():
            build_tiny_model(DEFAULT_ARCHITECTURE, base)
            write_parquet(synth_records(400, 1), folder / "train.parquet")
            train_adapter(str(base), folder / "train.parquet", adapter, TrainingSettings(steps=TEST_ADAPTER_STEPS))
    return TrainedModel(base, adapter)
