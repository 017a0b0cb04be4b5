"""What ``catalog beat`` sends when: one backfill per target on the cron expression, and the reaper.

Every entry goes to the control queue. Ticks carry an expiry so that, after a time without a control
worker, a backlog of stale ticks is dropped instead of run back to back when one starts again.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from catalog_enrich.backfill_settings import CRON_FIELDS
from catalog_enrich.messages import BACKFILL_TASK, CONTROL_QUEUE, REAP_STALLED_RUNS_TASK
from catalog_enrich.settings import Settings

#: seconds a backfill tick may wait for a control worker; a later one is dropped (the next tick covers it)
BACKFILL_EXPIRES = 6 * 3600


def backfill_crontab(expression: str) -> crontab:
    """Celery's crontab for a five-field cron expression (checked by Settings), in the app's timezone (UTC)."""
    return crontab(**dict(zip(CRON_FIELDS, expression.split(), strict=True)))


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: the reaper every CATALOG_REAPER_INTERVAL seconds, each backfill target on
    CATALOG_BACKFILL_CRON."""
    schedule: dict[str, dict[str, Any]] = {
        REAP_STALLED_RUNS_TASK: {
            "task": REAP_STALLED_RUNS_TASK,
            "schedule": float(settings.reaper_interval),
            # a pass that waited a whole interval is superseded by the next one
            "options": {"queue": CONTROL_QUEUE, "expires": settings.reaper_interval},
        }
    }
    every_night = backfill_crontab(settings.backfill_cron)
    for target in settings.backfill_targets:
        schedule[f"{BACKFILL_TASK} {target}"] = {
            "task": BACKFILL_TASK,
            "schedule": every_night,
            "args": (target.bucket, target.prefix),
            "options": {"queue": CONTROL_QUEUE, "expires": BACKFILL_EXPIRES},
        }
    return schedule
