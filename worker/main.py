"""The worker entry point: ``celery -A worker.main`` (and Flower) load the app from here.

The model is loaded in each pool process as it starts (``worker_process_init``), never in the parent
that forks them, so CUDA initialises in the process that uses it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import setup_logging, worker_process_init, worker_ready

from catalog_enrich.log_format import configure_logging
from worker.app import create_app
from worker.engine_holder import get_engine
from worker.metrics import start_metrics_server

log = logging.getLogger(__name__)

#: set to 0 for processes that only talk to the broker (Flower, beat) so they never load a model
PRELOAD_VARIABLE = "CATALOG_PRELOAD_MODEL"

app = create_app()


@setup_logging.connect
def configure_catalog_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Log in CATALOG_LOG_FORMAT (text or JSON lines, with run and batch ids) instead of Celery's format.

    Celery configures no logging of its own once this receiver is connected, in workers and beat alike.
    """
    configure_logging(log_format=app.conf.catalog_settings.log_format, level=loglevel or logging.INFO)


@worker_process_init.connect
def load_model_in_child(**_: Any) -> None:
    """Load the engine as soon as a pool process starts, so the first batch doesn't pay for it."""
    if os.environ.get(PRELOAD_VARIABLE, "1") != "0":
        get_engine(app.conf.catalog_settings)
    # metrics live in the process that runs the tasks, so that process serves them
    start_metrics_server()


@worker_ready.connect
def serve_metrics_without_pool_processes(sender: Any = None, **_: Any) -> None:
    """A solo worker runs tasks in its own process: serve its metrics (a prefork parent runs none)."""
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        start_metrics_server()
