"""A worker run as a child process group: how the demo, the benchmark and the reliability suite start one.

The worker gets a session of its own, so a signal to its group reaches its pool processes too, and the
caller's terminal signals (Ctrl-C) do not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

#: ``catalog worker`` with this interpreter
CATALOG_WORKER = (sys.executable, "-m", "catalog_enrich.cli", "worker")


def start_worker_process(command: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in a new process group, appending its output to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
        )


def kill_worker_process(worker: subprocess.Popen) -> None:
    """SIGKILL the whole group: the worker and its pool processes die at once, finishing nothing."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def stop_worker_process(worker: subprocess.Popen, timeout: float = 60) -> None:
    """Warm shutdown (the running batch finishes or goes back to the queue); killed after ``timeout``."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_worker_process(worker)
