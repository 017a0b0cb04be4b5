"""A minimal Celery client for sending batch messages; it knows task names, never the task code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from catalog_enrich.messages import ENRICH_BATCH_TASK, INFERENCE_QUEUE
from catalog_enrich.settings import Settings

#: seconds to wait when opening a broker connection, so an unreachable broker fails fast
CONNECT_TIMEOUT = 5


def producer_app(settings: Settings) -> Celery:
    """A Celery app that only sends: JSON messages to the inference queue of the configured broker."""
    # the visibility timeout is read by every client of the Redis transport (including this one, whose
    # connection also restores unacknowledged messages), so it must match the workers' value
    transport = {"visibility_timeout": settings.visibility_timeout, "socket_connect_timeout": CONNECT_TIMEOUT}
    app = Celery("catalog_enrich_producer", set_as_current=False)
    app.conf.update(
        broker_url=settings.require_broker_url(),
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_timeout=CONNECT_TIMEOUT,
        broker_connection_retry_on_startup=False,
        # JSON only: the workers refuse anything else
        accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        task_ignore_result=True,
        task_routes={ENRICH_BATCH_TASK: {"queue": INFERENCE_QUEUE}},
        task_default_queue=INFERENCE_QUEUE,
    )
    return app


class BatchSender:
    """Sends batch messages over one broker connection (opening one per message would cap the rate)."""

    def __init__(self, app: Celery, producer: Any) -> None:
        self._app = app
        self._producer = producer
        self.sent = 0

    def send(self, payload: dict[str, Any]) -> None:
        """Publish one batch message (see ``catalog_enrich.messages`` for its shape), stamped ``sent_at``."""
        # the send time lets workers measure how long batches wait in the queue
        message = {**payload, "sent_at": datetime.now(UTC).isoformat()}
        summary = f"run={payload['run_id']} batch={payload['batch_id']} images={len(payload['items'])}"
        self._app.send_task(
            ENRICH_BATCH_TASK,
            kwargs={"message": message},
            queue=INFERENCE_QUEUE,
            producer=self._producer,
            # what Flower and worker logs show instead of the whole list of image references
            argsrepr="()",
            kwargsrepr=summary,
        )
        self.sent += 1


@contextmanager
def batch_sender(app: Celery) -> Iterator[BatchSender]:
    """A BatchSender holding one pooled broker producer for the duration of the block."""
    with app.producer_or_acquire() as producer:
        yield BatchSender(app, producer)
