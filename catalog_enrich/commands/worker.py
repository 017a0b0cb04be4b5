"""``catalog worker``: an inference worker with the pool, concurrency and queue right for this machine."""

from __future__ import annotations

import argparse

from catalog_enrich.commands.log_options import add_log_json, celery_flags, process_settings

HELP = "start an inference worker (loads the model once per process)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--name", default="inference@%h", help="worker node name (default inference@%%h)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--pool",
        choices=["prefork", "solo"],
        default="prefork",
        help="prefork (default): one child process holds the model and time limits are enforced; "
        "solo: the model runs in this process (no time limits)",
    )
    add_log_json(parser)


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The Celery worker command line for these arguments."""
    from catalog_enrich.messages import INFERENCE_QUEUE

    # one model per process: a second process on the same device would duplicate the weights, so
    # scale out with one worker per GPU (CUDA_VISIBLE_DEVICES) rather than with concurrency
    return [
        "worker",
        f"--pool={args.pool}",
        "--concurrency=1",
        f"--queues={INFERENCE_QUEUE}",
        f"--hostname={args.name}",
        f"--loglevel={args.loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def run(args: argparse.Namespace) -> int:
    """Check settings, then hand over to Celery's worker."""
    settings = process_settings(args, needs_database=True)
    if settings is None:
        return 2
    from worker.engine_holder import get_engine
    from worker.main import app

    if args.pool == "solo":
        get_engine(settings)
    app.worker_main([*celery_flags(settings), *worker_argv(args)])
    return 0
