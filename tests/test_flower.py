"""``catalog flower``: Flower on the test Redis, behind basic auth, and what it shows of a batch."""

from __future__ import annotations

import base64
import os
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
from kombu import Connection

from catalog_enrich.cli import main
from catalog_enrich.commands.flower import PRELOAD_VARIABLE, auth_problem, flower_argv, flower_env, is_loopback
from catalog_enrich.messages import INFERENCE_QUEUE
from catalog_enrich.settings import Settings
from producer.broker import batch_sender, producer_app
from producer.sending import batch_payload

#: seconds Flower may take to import the worker app and start serving
START_TIMEOUT = 60

CREDENTIALS = "ops:s3cret-pass"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, credentials: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.fixture
def flower(broker_url: str, tmp_path: Path) -> Iterator[str]:
    """``catalog flower`` serving on a free loopback port; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "CATALOG_HOME": str(tmp_path),
        "CATALOG_BROKER_URL": broker_url,
        "FLOWER_BASIC_AUTH": CREDENTIALS,
    }
    command = [sys.executable, "-m", "catalog_enrich.cli", "flower", "--port", str(port), "--address", "127.0.0.1"]
    log = (tmp_path / "flower.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if get(f"{base}/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"flower did not start:\n{(tmp_path / 'flower.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.services
def test_flower_requires_credentials(flower: str) -> None:
    assert get(f"{flower}/healthcheck") == (200, "OK")
    assert get(f"{flower}/")[0] == 401
    assert get(f"{flower}/", "ops:wrong")[0] == 401
    status, body = get(f"{flower}/", CREDENTIALS)
    assert status == 200 and "Flower" in body


def test_flower_refuses_to_start_open_to_the_network(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    assert main(["flower", "--address", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.startswith("error: set FLOWER_BASIC_AUTH=user:password")
    assert main(["flower", "--address", "0.0.0.0", "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert "loopback" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "no-colon")
    assert main(["flower", "--address", "127.0.0.1"]) == 2


def test_auth_rules() -> None:
    assert auth_problem("a:b", "0.0.0.0", no_auth=False) is None
    assert auth_problem("a:b,c:d", "10.0.0.1", no_auth=False) is None
    assert auth_problem("a:", "127.0.0.1", no_auth=False) is not None
    assert auth_problem(None, "127.0.0.1", no_auth=False) is not None
    assert auth_problem(None, "127.0.0.1", no_auth=True) is None
    assert auth_problem(None, "::1", no_auth=True) is None
    assert auth_problem(None, "localhost", no_auth=True) is None
    assert auth_problem(None, "example.com", no_auth=True) is not None
    assert is_loopback("127.0.0.2") and not is_loopback("0.0.0.0") and not is_loopback("")


def test_flower_command_line_keeps_the_password_off_it() -> None:
    argv = flower_argv(5601, "127.0.0.1")
    assert argv[1:] == ["-m", "celery", "--app=worker.main", "flower", "--port=5601", "--address=127.0.0.1"]
    env = flower_env({"FLOWER_BASIC_AUTH": CREDENTIALS, PRELOAD_VARIABLE: "1"})
    assert env[PRELOAD_VARIABLE] == "0" and env["FLOWER_BASIC_AUTH"] == CREDENTIALS
    # worker.main builds the Celery app on import (it needs a broker), so compare with its source
    source = (Path(__file__).parent.parent / "worker" / "main.py").read_text()
    assert f'PRELOAD_VARIABLE = "{PRELOAD_VARIABLE}"' in source


@pytest.mark.services
def test_sent_batches_show_a_summary_not_their_references(broker_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"CATALOG_HOME": str(tmp_path), "CATALOG_BROKER_URL": broker_url})
    run_id = uuid.uuid4().hex
    payload = batch_payload(run_id, "batch1", [(n, "shop", f"img/{n}.jpg", "etag") for n in range(3)])
    with batch_sender(producer_app(settings)) as sender:
        sender.send(payload)
    # the broker database is shared with other tests: take every waiting message, keep this run's
    found = []
    with Connection(broker_url) as connection:
        queue = connection.SimpleQueue(INFERENCE_QUEUE, no_ack=True)
        while True:
            try:
                message = queue.get(timeout=1)
            except queue.Empty:
                break
            if message.decode()[1]["message"]["run_id"] == run_id:
                found.append(message)
        queue.close()
    assert len(found) == 1
    message = found[0]
    # Flower shows these two headers as the task's arguments
    assert message.headers["kwargsrepr"] == f"run={run_id} batch=batch1 images=3"
    assert message.headers["argsrepr"] == "()"
    _args, kwargs, _embed = message.decode()
    assert kwargs["message"]["items"] == payload["items"] and kwargs["message"]["sent_at"].endswith("+00:00")
