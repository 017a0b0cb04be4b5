"""``catalog flower``: Flower, the live view of the workers and their batches, behind basic auth.

Flower shows what is in flight (workers, tasks, rates); the ledger stays the record of progress
(``catalog status``). Flower reads FLOWER_BASIC_AUTH itself, so the password never appears on a command
line where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping

HELP = "run Flower (live workers and tasks) for the inference workers, behind FLOWER_BASIC_AUTH"

#: the variable holding ``user:password`` (several pairs separated by commas)
AUTH_VARIABLE = "FLOWER_BASIC_AUTH"

#: Flower's own default port
DEFAULT_PORT = 5555

#: worker.main's switch for loading the model; importing worker.main here would build the Celery app twice
PRELOAD_VARIABLE = "CATALOG_PRELOAD_MODEL"

#: exit status for a refused start (the same as argparse's usage errors)
EXIT_REFUSED = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """Add --port, --address and --no-auth."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help=f"serve without authentication when {AUTH_VARIABLE} is unset; allowed on a loopback address only",
    )


def is_loopback(address: str) -> bool:
    """Whether ``address`` is reachable from this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        # a host name other than localhost may resolve to anything
        return False


def auth_problem(auth: str | None, address: str, no_auth: bool) -> str | None:
    """Why Flower must not start with these settings, or None when it may."""
    if auth:
        pairs = auth.split(",")
        if any(not user or not password for user, _, password in (pair.partition(":") for pair in pairs)):
            return f"{AUTH_VARIABLE} must be user:password (pairs separated by commas)"
        return None
    if not no_auth:
        return f"set {AUTH_VARIABLE}=user:password (or pass --no-auth on a loopback address)"
    if not is_loopback(address):
        return f"--no-auth is allowed only on a loopback address, not {address}; set {AUTH_VARIABLE}=user:password"
    return None


def flower_argv(port: int, address: str) -> list[str]:
    """The command line that serves Flower for the worker app (credentials come from the environment)."""
    return [sys.executable, "-m", "celery", "--app=worker.main", "flower", f"--port={port}", f"--address={address}"]


def flower_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for Flower: ``environ`` with model preloading off (Flower only talks to the broker)."""
    return {**environ, PRELOAD_VARIABLE: "0"}


def run(args: argparse.Namespace) -> int:
    """Check auth and settings, then replace this process with Flower (signals reach Flower directly)."""
    from catalog_enrich.settings import Settings, SettingsError

    problem = auth_problem(os.environ.get(AUTH_VARIABLE), args.address, args.no_auth)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        Settings.from_env().require_broker_url()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    argv = flower_argv(args.port, args.address)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, flower_env(os.environ))
    return 0  # not reached: execve replaces the process
