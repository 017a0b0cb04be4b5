"""The Celery application of the inference workers, configured for long GPU batches on Redis.

Delivery on Redis is at-least-once: a message stays unacknowledged until its task returns, and one left
unacknowledged past the visibility timeout is delivered again. So tasks are acknowledged late, a worker
takes one message at a time, the hard time limit stays below the visibility timeout (checked by
Settings), and every write the task makes is idempotent.
"""

from __future__ import annotations

from celery import Celery

from catalog_enrich.messages import ENRICH_BATCH_TASK, INFERENCE_QUEUE
from catalog_enrich.settings import Settings

#: seconds between the soft time limit (the task can still record its failure) and the hard kill
SOFT_LIMIT_MARGIN = 60


def celery_config(settings: Settings) -> dict:
    """The Celery configuration derived from the project settings."""
    transport = {"visibility_timeout": settings.visibility_timeout}
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
        "task_soft_time_limit": max(1, settings.task_time_limit - SOFT_LIMIT_MARGIN),
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_routes": {ENRICH_BATCH_TASK: {"queue": INFERENCE_QUEUE}},
        "task_default_queue": INFERENCE_QUEUE,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` with the enrichment task registered."""
    settings = settings or Settings.from_env()
    app = Celery("catalog_enrich")
    app.conf.update(celery_config(settings))
    app.conf.catalog_settings = settings
    app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
    return app
