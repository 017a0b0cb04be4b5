"""``catalog control-worker``: a worker for the control queue (backfills, the reaper), with no model.

Control tasks list S3, read the ledger and send messages; a few threads run them side by side, so a long
backfill never holds up the reaper. Any machine with access to the broker, database and S3 can run it.
"""

from __future__ import annotations

import argparse
import os
import sys

from catalog_enrich.commands.log_options import add_log_json, celery_flags, process_settings

HELP = "start a worker for the control queue (nightly backfills, the stalled-run reaper); loads no model"

#: worker.main's switch for loading the model (not imported here: that would build the Celery app early)
PRELOAD_VARIABLE = "CATALOG_PRELOAD_MODEL"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--name", default="control@%h", help="worker node name (default control@%%h)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="control tasks run at once, one thread each (default 2)"
    )
    add_log_json(parser)


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The Celery worker command line for these arguments."""
    from catalog_enrich.messages import CONTROL_QUEUE

    return [
        "worker",
        # threads, not processes: the tasks wait on S3, PostgreSQL and Redis, and share nothing
        "--pool=threads",
        f"--concurrency={args.concurrency}",
        f"--queues={CONTROL_QUEUE}",
        f"--hostname={args.name}",
        f"--loglevel={args.loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def run(args: argparse.Namespace) -> int:
    """Check settings, then hand over to Celery's worker, model loading off."""
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    os.environ[PRELOAD_VARIABLE] = "0"
    settings = process_settings(args, needs_database=True)
    if settings is None:
        return 2
    from worker.main import app

    app.worker_main([*celery_flags(settings), *worker_argv(args)])
    return 0
