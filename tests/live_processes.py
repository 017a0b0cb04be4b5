"""Real processes for the tests that need them: a ``catalog worker``, and commands run as a user runs them.

Not a test module itself: ``test_security`` and ``test_object_keys`` share these helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import make_url

from catalog_enrich.worker_process import CATALOG_WORKER, start_worker_process, stop_worker_process
from vlm.data.synth import synth_records

ROOT = Path(__file__).resolve().parent.parent

#: runs several commands in one interpreter (imports dominate a command's run time) and prints, per
#: command, its exit status and everything it wrote, log records included
PROBE = """
import contextlib, io, json, logging, os, sys
from catalog_enrich.cli import main as catalog
from producer.cli import main as enqueue
results = []
for case in json.loads(sys.stdin.read()):
    os.environ.clear()
    os.environ.update(case["env"])
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        command = enqueue if case["command"] == "enqueue" else catalog
        try:
            code = command(case["argv"])
        except SystemExit as exit:
            code = exit.code
    logging.getLogger().removeHandler(handler)
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def client_env(home: Path, service_env: dict[str, str], database_url: str, broker_url: str) -> dict[str, str]:
    """The environment of a command pointed at the test servers (nothing inherited from CATALOG_/AWS_)."""
    variables = {name: value for name, value in os.environ.items() if not name.startswith(("CATALOG_", "AWS_"))}
    return variables | {
        "CATALOG_HOME": str(home),
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_BROKER_URL": broker_url,
        "CATALOG_BASE_MODEL": "test-base-model",
        "AWS_ENDPOINT_URL_S3": service_env["AWS_ENDPOINT_URL_S3"],
        "AWS_ACCESS_KEY_ID": service_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": service_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": service_env.get("AWS_DEFAULT_REGION", "us-east-1"),
    }


def worker_env(client: dict[str, str], trained_model: Any) -> dict[str, str]:
    """``client`` with the test model: what a worker (and a producer computing its model version) needs."""
    model = {"CATALOG_BASE_MODEL": str(trained_model.base), "CATALOG_ADAPTER": str(trained_model.adapter)}
    return client | model | {"CATALOG_QUANTIZATION": "none"}


def service_credentials(service_env: dict[str, str], database_url: str, broker_url: str) -> list[str]:
    """The passwords and secret key of the test servers."""
    found = [service_env["AWS_SECRET_ACCESS_KEY"], make_url(database_url).password, urlsplit(broker_url).password]
    return [secret for secret in found if secret]


def run_commands(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``{"command": "enqueue" | "catalog", "argv": [...], "env": {...}}`` cases in one subprocess;
    per case ``{"code", "stdout", "stderr"}``."""
    finished = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout)


def enqueue(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``enqueue ARGS --json`` as its own process; the summary it prints."""
    command = [sys.executable, "-m", "producer.cli", *args, "--json"]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)


def put_images(client: Any, bucket: str, keys: list[str], seed: int) -> None:
    """One distinct synthetic product image per key, so an object mixed up with another shows."""
    for key, record in zip(keys, synth_records(len(keys), seed), strict=True):
        client.put_object(Bucket=bucket, Key=key, Body=record["image"]["bytes"])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` twice a second; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@dataclass
class Worker:
    """A ``catalog worker`` subprocess, its environment and its log file."""

    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """Everything the worker logged so far."""
        return self.log.read_text(errors="replace")


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[Worker]:
    """A worker started with ``env`` for the duration of the block, stopped and reaped afterwards.

    Only one worker may consume the test broker's queue at a time, or it takes another test's messages.
    """
    process = start_worker_process([*CATALOG_WORKER, "--name", "test@%h", "--loglevel", "INFO"], env, log)
    try:
        yield Worker(env, process, log)
    finally:
        stop_worker_process(process)
