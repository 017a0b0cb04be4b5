"""The control tasks beat schedules: the nightly backfill of each target, and the stalled-run reaper.

They run on the control queue (``catalog control-worker``), never on a GPU worker: they list S3, read the
ledger and send messages, and load no model. They are acknowledged as soon as they start: a control task
lost with its worker is simply run again at the next tick, and an unacknowledged one would count as a
message in flight for the reaper, which only resends runs while the broker holds nothing.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from catalog_enrich.backfill_settings import BackfillTarget
from catalog_enrich.messages import BACKFILL_TASK, REAP_STALLED_RUNS_TASK
from catalog_enrich.settings import Settings


@shared_task(name=BACKFILL_TASK, acks_late=False)
def backfill(bucket: str, prefix: str = "") -> dict[str, Any]:
    """Enqueue the new and changed images under ``prefix`` of ``bucket``, unless a run of it is under way."""
    # imported when run: processes that only load the app (inference workers, beat, Flower) never need it
    from producer.backfill import backfill_from_settings

    return backfill_from_settings(BackfillTarget(bucket, prefix), Settings.from_env()).as_dict()


@shared_task(name=REAP_STALLED_RUNS_TASK, acks_late=False)
def reap_stalled_runs() -> dict[str, Any]:
    """Resend the unfinished items of runs whose messages the broker lost."""
    from producer.reaper import reap_stalled_runs as reap

    return reap(Settings.from_env())
