"""docker-compose.yml: the deployment users with Docker and a GPU start from."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_part_of_the_system_is_a_service(compose):
    expected = {"postgres", "redis", "minio", "create-bucket", "migrate", "worker", "flower", "producer"}
    expected |= {"beat", "control-worker"}
    assert expected <= set(compose["services"])


def test_redis_keeps_queued_messages_on_disk(compose):
    assert "--appendonly" in compose["services"]["redis"]["command"]


def test_worker_reserves_a_gpu_and_waits_for_migrations(compose):
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert any(volume.endswith("/cache/huggingface") for volume in worker["volumes"])


def test_flower_is_behind_basic_auth(compose):
    flower = compose["services"]["flower"]
    assert flower["command"][:2] == ["catalog", "flower"]
    # catalog flower reads the credentials from the environment: never on a command line `ps` shows
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert not any("FLOWER_BASIC_AUTH" in part or "auth" in part for part in flower["command"])


def test_beat_and_the_control_worker_need_no_gpu(compose):
    beat, control = compose["services"]["beat"], compose["services"]["control-worker"]
    assert beat["command"] == ["catalog", "beat"]
    assert control["command"][:2] == ["catalog", "control-worker"]
    assert "deploy" not in beat and "deploy" not in control
    assert control["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the same model files as the GPU worker, or the control worker's model version would differ from it
    assert set(compose["services"]["worker"]["volumes"]) & set(control["volumes"])


def test_services_publish_ports_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run(
        [binary, "-f", str(COMPOSE), *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


def test_docker_compose_accepts_the_file():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")} | {"FLOWER_BASIC_AUTH": "ops:pw"}
    result = docker_compose("config", "-q", env=env)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_flower_without_credentials():
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    result = docker_compose("config", "-q", env=env)
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr
