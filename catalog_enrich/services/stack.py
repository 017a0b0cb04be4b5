"""The local PostgreSQL, Redis and S3 servers together: ``up``, ``down``, ``status`` and ``env``.

A service whose variable (``CATALOG_DATABASE_URL``, ``CATALOG_BROKER_URL``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``) is already set is left alone: that variable points at a server someone already runs.
"""

from __future__ import annotations

import fcntl
import os
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from catalog_enrich.services.postgres import PostgresService
from catalog_enrich.services.redis_server import RedisService
from catalog_enrich.services.seaweedfs import SeaweedService
from catalog_enrich.services.service import LocalService, ServiceStatus, load_credentials, services_dir

#: the services in start order
SERVICE_TYPES: tuple[type[LocalService], ...] = (PostgresService, RedisService, SeaweedService)


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did for one service: ``started`` now, already running, or left to an external server."""

    status: ServiceStatus
    action: str


def local_services(home: Path) -> list[LocalService]:
    """One handle per local service of ``home``."""
    return [service_type(home) for service_type in SERVICE_TYPES]


def external_variable(service: LocalService, environ: Mapping[str, str]) -> str | None:
    """The variable that makes ``service`` external in ``environ``, or None when it is local."""
    return next((name for name in service.external_variables if environ.get(name)), None)


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialize ``up`` and ``down`` of one CATALOG_HOME across processes (parallel test runs, two shells)."""
    folder = services_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(home: Path, environ: Mapping[str, str] | None = None) -> list[UpResult]:
    """Start every local service that is neither running nor replaced by an external one; idempotent."""
    environ = os.environ if environ is None else environ
    results = []
    with _locked(home):
        credentials = load_credentials(home, create=True)
        assert credentials is not None
        for service in local_services(home):
            variable = external_variable(service, environ)
            if variable is not None:
                status = ServiceStatus(service.name, False, None, f"not started: {variable} is set")
                results.append(UpResult(status, "external"))
                continue
            started = service.start(service.requested_port(environ), credentials)
            results.append(UpResult(service.status(), "started" if started else "already running"))
    return results


def down(home: Path) -> list[str]:
    """Stop every running local service of ``home`` gracefully; the names of those that were stopped."""
    stopped = []
    with _locked(home):
        # reverse start order: clients of the database (none here, but S3 and Redis) go first
        for service in reversed(local_services(home)):
            if service.stop():
                stopped.append(service.name)
    return stopped


def status(home: Path, environ: Mapping[str, str] | None = None) -> list[ServiceStatus]:
    """The status of every local service, noting which ones an external server replaces."""
    environ = os.environ if environ is None else environ
    statuses = []
    for service in local_services(home):
        current = service.status()
        variable = external_variable(service, environ)
        if variable is not None:
            detail = f"{current.detail}; {variable} is set and wins"
            current = ServiceStatus(current.name, current.running, current.url, detail)
        statuses.append(current)
    return statuses


def running_env(home: Path) -> dict[str, str]:
    """The client variables of every running local service of ``home`` (empty when none runs)."""
    return env(home, environ={})


def env(home: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The client variables to export: those of running local services not replaced by external ones."""
    environ = os.environ if environ is None else environ
    credentials = load_credentials(home, create=False)
    if credentials is None:
        return {}
    variables: dict[str, str] = {}
    for service in local_services(home):
        if external_variable(service, environ) is None and service.running():
            variables.update(service.env(credentials))
    return variables


def export_lines(variables: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines a shell can ``eval``."""
    return [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
