"""The Celery application of the inference workers, configured for long GPU batches on Redis.

Delivery on Redis is at-least-once: a message stays unacknowledged until its task returns, and one left
unacknowledged past the visibility timeout is delivered again. So tasks are acknowledged late, a worker
takes one message at a time, the hard time limit stays below the visibility timeout (checked by
Settings), and every write the task makes is idempotent.
"""

from __future__ import annotations

from celery import Celery

from catalog_enrich.messages import (
    BACKFILL_TASK,
    CONTROL_QUEUE,
    ENRICH_BATCH_TASK,
    INFERENCE_QUEUE,
    REAP_STALLED_RUNS_TASK,
)
from catalog_enrich.settings import Settings
from worker.beat_schedule import beat_schedule

#: seconds between the soft time limit (the task can still record its failure) and the hard kill, at most
SOFT_LIMIT_MARGIN = 60

#: seconds a new pool process may take to start, model loading included, before the worker gives up on
#: it; Celery's 4 s default kills a process still loading an 11B model and forks another, forever
POOL_PROCESS_START_TIMEOUT = 900.0


def soft_time_limit(hard_limit: int) -> int:
    """The soft limit for a hard limit: a tenth earlier, at most ``SOFT_LIMIT_MARGIN`` and at least 1 s."""
    return max(1, hard_limit - max(1, min(SOFT_LIMIT_MARGIN, hard_limit // 10)))


def restore_interval(visibility_timeout: int) -> int:
    """Seconds between sweeps for orphaned messages: a tenth of the timeout, between 1 s and a minute."""
    return max(1, min(60, visibility_timeout // 10))


def celery_config(settings: Settings) -> dict:
    """The Celery configuration derived from the project settings."""
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # how often idle workers look for messages whose worker died (unacknowledged past the visibility
        # timeout); the transport's default only looks every 100 s, which is long next to a short timeout
        "unacked_restore_interval": restore_interval(settings.visibility_timeout),
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": settings.require_broker_url(),
        # JSON only: a pickle from the broker would run arbitrary code in the worker
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": soft_time_limit(settings.task_time_limit),
        "worker_proc_alive_timeout": POOL_PROCESS_START_TIMEOUT,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_routes": {
            ENRICH_BATCH_TASK: {"queue": INFERENCE_QUEUE},
            BACKFILL_TASK: {"queue": CONTROL_QUEUE},
            REAP_STALLED_RUNS_TASK: {"queue": CONTROL_QUEUE},
        },
        "task_default_queue": INFERENCE_QUEUE,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` with the enrichment and control tasks registered."""
    settings = settings or Settings.from_env()
    app = Celery("catalog_enrich")
    app.conf.update(celery_config(settings))
    app.conf.catalog_settings = settings
    app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
    app.autodiscover_tasks(["worker"], related_name="control_tasks", force=True)
    return app
