"""``catalog flower`` in a real browser: a live control worker and its finished backfills on Flower's pages.

Headless Chromium renders the pages, JavaScript included (the tasks table loads its rows from Flower's
API), and ``--dump-dom`` gives the resulting document. Without Chromium the test is skipped locally and
fails in CI, like the servers in conftest.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_enrich.messages import BACKFILL_TASK, CONTROL_QUEUE
from catalog_enrich.settings import Settings
from catalog_enrich.worker_process import start_worker_process, stop_worker_process
from producer.broker import producer_app

pytestmark = pytest.mark.services

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: the Flower login the test sets (FLOWER_BASIC_AUTH)
USER, PASSWORD = "ops", "br0wser-pass"

#: seconds Flower or the worker may take to start, and the tasks to finish
START_TIMEOUT = 60


@pytest.fixture
def browser() -> str:
    """The Chromium binary, or a skip (a failure in CI) when there is none."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(url: str) -> object:
    """A JSON answer of Flower's API, with the test's credentials."""
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    pytest.fail(f"{what} within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def stack_env(service_env, database_url, broker_url, tmp_path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "AWS_", "FLOWER_"))}
    return keep | {
        "CATALOG_HOME": str(tmp_path),
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_BROKER_URL": broker_url,
        "CATALOG_BASE_MODEL": "example/base-model",
        "AWS_ENDPOINT_URL_S3": service_env["AWS_ENDPOINT_URL_S3"],
        "AWS_ACCESS_KEY_ID": service_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": service_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": service_env.get("AWS_DEFAULT_REGION", "us-east-1"),
        "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}",
    }


@pytest.fixture
def flower(stack_env, tmp_path) -> Iterator[str]:
    """``catalog flower`` on a free port, started before the worker so it sees every task event."""
    port = free_port()
    log = tmp_path / "flower.log"
    command = [sys.executable, "-m", "catalog_enrich.cli", "flower", "--port", str(port)]
    process = start_worker_process(command, stack_env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{base}/healthcheck", timeout=2).status == 200, "no Flower", log)
        yield base
    finally:
        stop_worker_process(process, timeout=20)


@pytest.fixture
def control_worker(flower, stack_env, tmp_path) -> Iterator[str]:
    """``catalog control-worker`` with a name of its own; its full node name once Flower lists it."""
    name = f"browser-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "catalog_enrich.cli", "control-worker", "--name", f"{name}@%h", "--log-json"]
    process = start_worker_process(command, stack_env, log)
    try:
        wait_for(lambda: f"{name}@" in log.read_text(), "the worker was not ready", log)
        yield name
    finally:
        stop_worker_process(process, timeout=20)


def dump_dom(browser: str, url: str, profile: Path) -> str:
    """The document at ``url`` after its scripts ran, as headless Chromium renders it."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # tests often run as root in containers, where the sandbox cannot start
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        "--dump-dom",
        url,
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout


def row(page: str, task_id: str) -> str:
    """The tasks table's row of ``task_id`` (empty when it is not there)."""
    start = page.find(f'<tr id="{task_id}"')
    return page[start : page.find("</tr>", start)] if start >= 0 else ""


def test_flower_shows_the_worker_and_its_finished_tasks(
    browser, s3, flower, control_worker, stack_env, tmp_path
) -> None:
    for key in ("shop/a.jpg", "shop/b.jpg"):
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"jpeg bytes")
    app = producer_app(Settings.from_env(stack_env))
    # the first starts a run; the second finds it in progress and skips: two finished tasks either way
    task_ids = []
    for _ in range(2):
        task_ids.append(app.send_task(BACKFILL_TASK, args=(s3.bucket, "shop/"), queue=CONTROL_QUEUE).id)
        wait_for(
            lambda: api(f"{flower}/api/tasks").get(task_ids[-1], {}).get("state") == "SUCCESS",
            "the backfill did not finish",
            tmp_path / "worker.log",
        )

    # credentials in the URL: Chromium answers Flower's basic-auth challenge with them, page and API calls
    authenticated = flower.replace("http://", f"http://{USER}:{PASSWORD}@")
    workers = dump_dom(browser, f"{authenticated}/workers", tmp_path / "chrome")
    assert "<title>Workers · Flower</title>" in workers
    assert f"{control_worker}@" in workers
    tasks = dump_dom(browser, f"{authenticated}/tasks", tmp_path / "chrome")
    for task_id in task_ids:
        assert BACKFILL_TASK in row(tasks, task_id) and "SUCCESS" in row(tasks, task_id)
        assert f"{control_worker}@" in row(tasks, task_id)
    assert PASSWORD not in tasks and PASSWORD not in workers

    # the worker ran with --log-json: every line is an object, the backfill's tagged with the run it started
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines() if line.strip()]
    started = [line for line in lines if line["logger"] == "producer.backfill" and "run_id" in line]
    assert len(started) == 1 and started[0]["message"].startswith(f"backfill of {s3.bucket}/shop/: listed 2")
