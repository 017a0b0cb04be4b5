"""The local servers as real processes: up, status, env, signature checks, persistence and down.

These tests run their own servers under a temporary CATALOG_HOME, on ports apart from both the defaults
and the shared test servers, so stopping them disturbs nothing else.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_enrich.services import stack
from catalog_enrich.services.process import ServiceError, pid_alive
from catalog_enrich.settings import Settings

pytestmark = pytest.mark.services

PORTS = {"CATALOG_POSTGRES_PORT": "54349", "CATALOG_REDIS_PORT": "63792", "CATALOG_S3_PORT": "18373"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CATALOG_HOME whose servers are stopped when the module ends."""
    path = tmp_path_factory.mktemp("catalog-home")
    yield path
    stack.down(path)


@pytest.fixture(scope="module")
def started(home: Path) -> dict[str, str]:
    """Servers started cold under ``home``; returns their client variables."""
    began = time.monotonic()
    results = stack.up(home, PORTS)
    print(f"cold start of all services: {time.monotonic() - began:.1f} s")
    assert [result.action for result in results] == ["started", "started", "started"]
    return stack.env(home, {})


def test_up_is_idempotent(home: Path, started: dict[str, str]) -> None:
    results = stack.up(home, PORTS)
    assert [result.action for result in results] == ["already running"] * 3
    assert all(status.running for status in stack.status(home, {}))


def test_env_names_every_client_variable(started: dict[str, str]) -> None:
    assert set(started) == {
        "CATALOG_DATABASE_URL",
        "CATALOG_BROKER_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    }
    assert started["CATALOG_DATABASE_URL"].endswith("@127.0.0.1:54349/catalog")
    assert all(line.startswith("export ") for line in stack.export_lines(started))


def test_credentials_file_is_private(home: Path, started: dict[str, str]) -> None:
    assert (home / "services" / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_clients_connect(started: dict[str, str]) -> None:
    import boto3
    import psycopg
    import redis

    with psycopg.connect(started["CATALOG_DATABASE_URL"].replace("+psycopg", "")) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert redis.Redis.from_url(started["CATALOG_BROKER_URL"]).ping()
    client = boto3.client(
        "s3",
        endpoint_url=started["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=started["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=started["AWS_SECRET_ACCESS_KEY"],
        region_name=started["AWS_DEFAULT_REGION"],
    )
    client.create_bucket(Bucket="images")
    client.put_object(Bucket="images", Key="a/1.jpg", Body=b"jpeg")
    assert client.get_object(Bucket="images", Key="a/1.jpg")["Body"].read() == b"jpeg"


def test_s3_has_room_for_thousands_of_buckets(started: dict[str, str]) -> None:
    """Every bucket takes a volume slot of its own; weed's default (free disk GiB) ran out after a few dozen."""
    import json
    import urllib.request

    from catalog_enrich.services.seaweedfs import MAX_VOLUMES, component_ports

    master = component_ports(int(PORTS["CATALOG_S3_PORT"]))["master.port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=5) as response:
        topology = json.load(response)["Topology"]
    assert topology["Max"] == MAX_VOLUMES >= 1000


def test_s3_refuses_a_wrong_secret(started: dict[str, str]) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3",
        endpoint_url=started["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=started["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError) as error:
        client.list_buckets()
    assert error.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_settings_fall_back_to_running_local_services(home: Path, started: dict[str, str]) -> None:
    settings = Settings.from_env({"CATALOG_HOME": str(home)})
    assert settings.database_url == started["CATALOG_DATABASE_URL"]
    assert settings.broker_url == started["CATALOG_BROKER_URL"]
    assert settings.s3.endpoint_url == started["AWS_ENDPOINT_URL_S3"]
    explicit = Settings.from_env({"CATALOG_HOME": str(home), "CATALOG_BROKER_URL": "redis://elsewhere:6379/0"})
    assert explicit.broker_url == "redis://elsewhere:6379/0"


def test_set_variables_win_over_local_services(tmp_path: Path) -> None:
    environ = {
        **PORTS,
        "CATALOG_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/catalog",
        "CATALOG_BROKER_URL": "redis://broker:6379/0",
        "AWS_ENDPOINT_URL_S3": "http://s3.example:9000",
    }
    results = stack.up(tmp_path, environ)
    assert [result.action for result in results] == ["external"] * 3
    assert stack.env(tmp_path, environ) == {}


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        environ = {
            "CATALOG_REDIS_PORT": str(port),
            "CATALOG_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/catalog",
            "AWS_ENDPOINT_URL_S3": "http://s3.example:9000",
        }
        with pytest.raises(ServiceError, match=f"port {port} .* already in use.*CATALOG_REDIS_PORT"):
            stack.up(tmp_path, environ)


def test_queued_messages_survive_a_restart_and_down_stops_everything(home: Path, started: dict[str, str]) -> None:
    import redis

    client = redis.Redis.from_url(started["CATALOG_BROKER_URL"])
    client.lpush("inference", "batch-1")
    # the append-only file is written every second; wait for it before stopping
    time.sleep(1.2)
    client.close()
    pids = {service.name: service.pid() for service in stack.local_services(home)}
    assert sorted(stack.down(home)) == ["postgres", "redis", "s3"]
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not any(status.running for status in stack.status(home, {}))
    assert stack.env(home, {}) == {}

    began = time.monotonic()
    stack.up(home, PORTS)
    print(f"warm start of all services: {time.monotonic() - began:.1f} s")
    assert redis.Redis.from_url(started["CATALOG_BROKER_URL"]).lrange("inference", 0, -1) == [b"batch-1"]


def test_shared_fixtures_give_a_fresh_bucket_and_an_empty_broker_database(s3, broker_url: str) -> None:
    import redis

    s3.client.put_object(Bucket=s3.bucket, Key="x/1.jpg", Body=b"jpeg")
    assert [item["Key"] for item in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]] == ["x/1.jpg"]
    # the broker database is shared by the whole test session, so only its isolation is checked here
    client = redis.Redis.from_url(broker_url)
    assert client.connection_pool.connection_kwargs["db"] != 0
