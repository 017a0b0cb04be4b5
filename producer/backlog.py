"""How many batch messages the broker still holds: waiting in the inference queue or taken but unacknowledged.

A run whose items are unfinished while the broker holds nothing has lost its messages (a Redis restart
without its append-only file, a flush, a failover to an empty replica): only then is resending them
from the ledger safe from doubling the work of messages still on their way.
"""

from __future__ import annotations

from celery import Celery

from catalog_enrich.messages import INFERENCE_QUEUE


def broker_backlog(app: Celery, queue: str = INFERENCE_QUEUE) -> int:
    """Messages waiting in ``queue`` (every priority level) plus messages delivered and not yet acknowledged.

    Unacknowledged messages include those a worker runs now, those held for a delayed retry, and those of
    a worker that died and that the broker will deliver again once the visibility timeout passes.
    """
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel.client
        waiting = sum(client.llen(channel._q_for_pri(queue, priority)) for priority in channel.priority_steps)
        return waiting + client.hlen(channel.unacked_key)
