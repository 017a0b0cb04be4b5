"""The stage the scenarios play on: servers of its own, a fresh database per scenario, real worker processes.

The suite starts its own PostgreSQL, Redis and S3 servers (as ``catalog services`` does, under
``CATALOG_HOME/reliability`` on ports of their own) because scenarios stop, restart and flush them; the
servers of ``catalog services`` and the catalog they hold are never touched.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_enrich.benchmark.producer_rate import run_enqueue
from catalog_enrich.benchmark.scratch import (
    Services,
    fill_bucket,
    flush_redis,
    remove_bucket,
    scratch_database,
    subprocess_env,
)
from catalog_enrich.reliability.faults import FaultPlan
from catalog_enrich.settings import S3Settings
from catalog_enrich.worker_process import kill_worker_process, start_worker_process, stop_worker_process

log = logging.getLogger(__name__)

#: ports of the suite's own servers, apart from ``catalog services`` and the test servers
SERVICE_PORTS = {"CATALOG_POSTGRES_PORT": "54359", "CATALOG_REDIS_PORT": "63793", "CATALOG_S3_PORT": "18393"}

#: the command of a worker with a fault plan (``catalog worker`` plus the faults of CATALOG_FAULTS)
FAULTY_WORKER = (sys.executable, "-m", "catalog_enrich.reliability.faulty_worker")

#: seconds between looks at the ledger while a scenario runs
POLL_S = 1.0


@dataclass(frozen=True)
class Model:
    """The base model and adapter every worker of the suite loads."""

    base: Path
    adapter: Path | None


@dataclass
class WorkerProcess:
    """One ``catalog worker`` process group started by the suite, and where it logs."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        """Whether the worker's main process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool process die mid-task, acking nothing."""
        kill_worker_process(self.process)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM), killed if it takes longer than ``timeout``."""
        stop_worker_process(self.process, timeout)

    def pool_pids(self) -> list[int]:
        """Pids of the worker's pool processes (children of the main process)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]


@dataclass
class Stage:
    """One scenario's world: its database, broker, bucket, environment and workers."""

    name: str
    services: Services
    database_url: str
    broker_url: str
    bucket: str
    env: dict[str, str]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    _sessions: Any = None

    def start_worker(
        self, *, faults: FaultPlan | None = None, pool: str = "prefork", **overrides: str
    ) -> WorkerProcess:
        """A real worker process (with ``faults`` installed) on this stage's servers."""
        number = len(self.workers) + 1
        name = f"{self.name}-{number}"
        env = self.env | (faults.to_env() if faults else {}) | overrides
        log_path = self.log_dir / f"{name}.log"
        command = [*FAULTY_WORKER, f"--name={name}@%h", f"--pool={pool}", "--loglevel=INFO"]
        process = start_worker_process(command, env, log_path)
        worker = WorkerProcess(name, process, log_path)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        """Stop every worker of the stage that still runs."""
        for worker in self.workers:
            worker.stop()

    def upload(self, objects: Mapping[str, bytes]) -> None:
        """Put ``objects`` (key -> bytes) in the stage's bucket; their keys join ``uploaded``, which is audited."""
        fill_bucket(self.services.s3_client(), self.bucket, objects.items())
        self.uploaded += objects

    def enqueue(self, *arguments: str, batch_size: int) -> str:
        """Run ``enqueue --bucket BUCKET`` as a user would; the run id it printed."""
        command = ["--bucket", self.bucket, "--batch-size", str(batch_size), *arguments]
        result = run_enqueue(command, self.env, timeout_s=300)
        return str(result["summary"]["run_id"])

    def sessions(self) -> Any:
        """The session factory on the stage's database (one pool for the whole stage)."""
        from db.engine import make_session_factory

        if self._sessions is None:
            self._sessions = make_session_factory(self.database_url)
        return self._sessions

    def query(self, sql: str, **params: Any) -> list[Any]:
        """The rows of one read-only SQL statement on the stage's database."""
        from sqlalchemy import text

        with self.sessions()() as session:
            return list(session.execute(text(sql), params).all())

    def close(self) -> None:
        """Kill the workers still running and close the stage's database connections."""
        for worker in self.workers:
            worker.kill()
        if self._sessions is not None:
            self._sessions.kw["bind"].dispose()

    def producer_app(self, **overrides: str) -> Any:
        """A sending-only Celery app on the stage's broker."""
        from catalog_enrich.settings import Settings
        from producer.broker import producer_app

        return producer_app(Settings.from_env(self.env | overrides))

    def wait_for_run(
        self,
        run_id: str,
        *,
        timeout: float,
        tick: Callable[[float], None] | None = None,
        reaper_quiet: float | None = None,
        batch_size: int = 8,
    ) -> bool:
        """Wait until the run is completed; True if it was before ``timeout``.

        ``tick(elapsed)`` is called at every poll (to inject faults as time passes). With ``reaper_quiet``,
        the reaper runs at every poll too, as ``catalog beat`` would run it, resending the items of a run
        whose messages the broker lost.
        """
        from datetime import timedelta

        from db.runs import run_status
        from producer.reaper import reap

        sessions, app = self.sessions(), self.producer_app()
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < timeout:
                if tick is not None:
                    tick(elapsed)
                try:
                    with sessions() as session:
                        if run_status(session, run_id) == "completed":
                            return True
                    if reaper_quiet is not None:
                        report = reap(sessions, app, batch_size=batch_size, quiet=timedelta(seconds=reaper_quiet))
                        if report.resent:
                            log.info("%s: the reaper resent %s", self.name, report.resent)
                except Exception as error:
                    log.debug("%s: the ledger is not readable now: %s", self.name, error)
                time.sleep(POLL_S)
            return False
        finally:
            app.close()


class Harness:
    """The suite's servers and model; hands out a fresh ``Stage`` per scenario."""

    def __init__(self, home: Path, model: Model, log_dir: Path, ports: Mapping[str, str] = SERVICE_PORTS) -> None:
        self.home = home / "reliability"
        self.model = model
        self.log_dir = log_dir
        self.environ = dict(ports)

    def up(self) -> Services:
        """Start the suite's servers (idempotent); where they are."""
        from catalog_enrich.services import stack

        stack.up(self.home, self.environ)
        return self.services()

    def services(self) -> Services:
        """Where the suite's running servers are."""
        from catalog_enrich.services import stack

        variables = stack.env(self.home, self.environ)
        s3 = S3Settings(
            endpoint_url=variables["AWS_ENDPOINT_URL_S3"],
            access_key_id=variables["AWS_ACCESS_KEY_ID"],
            secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region=variables.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
        return Services(variables["CATALOG_DATABASE_URL"], variables["CATALOG_BROKER_URL"], s3)

    def service(self, name: str) -> Any:
        """The local service handle ``postgres``, ``redis`` or ``s3``, to stop and start it."""
        from catalog_enrich.services import stack

        return next(service for service in stack.local_services(self.home) if service.name == name)

    def restart(self, name: str, down_for: float = 0.0) -> None:
        """Stop a server, keep it down ``down_for`` seconds, start it again on the same port."""
        from catalog_enrich.services.service import load_credentials

        service = self.service(name)
        port = service.recorded_port()
        service.stop()
        time.sleep(down_for)
        credentials = load_credentials(self.home, create=False)
        service.start(port, credentials)

    @contextmanager
    def stage(self, name: str, **settings: str) -> Iterator[Stage]:
        """A fresh database, an empty broker and a new bucket for one scenario; workers stopped after it."""
        services = self.up()
        flush_redis(services.broker_url)
        with scratch_database(services.database_url) as database_url:
            extra = {
                "CATALOG_BASE_MODEL": str(self.model.base),
                "CATALOG_QUANTIZATION": "none",
                "CATALOG_DECODING": "constrained",
                # workers must not fight over the cores: one thread each keeps many workers responsive
                "OMP_NUM_THREADS": "1",
                "CATALOG_HOME": str(self.home),
                **settings,
            }
            if self.model.adapter is not None:
                extra["CATALOG_ADAPTER"] = str(self.model.adapter)
            env = subprocess_env(services, database_url, services.broker_url, extra)
            bucket = f"reliability-{name}-{int(time.time())}"
            services.s3_client().create_bucket(Bucket=bucket)
            current = Stage(name, services, database_url, services.broker_url, bucket, env, self.log_dir)
            try:
                yield current
            finally:
                current.close()
                flush_redis(services.broker_url)
                remove_bucket(services.s3_client(), bucket)

    def down(self) -> None:
        """Stop the suite's servers."""
        from catalog_enrich.services import stack

        stack.down(self.home)
