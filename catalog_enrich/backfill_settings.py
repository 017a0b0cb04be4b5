"""The nightly backfill's settings: when it runs (a cron expression) and which bucket prefixes it covers.

CATALOG_BACKFILL_TARGETS is a comma-separated list of ``bucket`` or ``bucket/prefix`` entries (an
``s3://`` in front is accepted too): ``products,archive/2024/`` backfills the whole of bucket ``products``
and the keys under ``2024/`` in bucket ``archive``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: when the backfill runs unless CATALOG_BACKFILL_CRON says otherwise: every night at 02:00 UTC
DEFAULT_BACKFILL_CRON = "0 2 * * *"

#: the five fields of a cron expression, in order, as Celery's ``crontab`` names them
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

#: S3's bucket naming rules: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, order=True)
class BackfillTarget:
    """One bucket prefix the backfill enqueues (``prefix`` empty: the whole bucket)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{self.bucket}/{self.prefix}"


def parse_targets(raw: str | None) -> tuple[tuple[BackfillTarget, ...], list[str]]:
    """The targets listed in ``raw`` (in order, each once) and the problems found, each with what to do."""
    targets: list[BackfillTarget] = []
    problems = []
    for entry in (raw or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        bucket, _, prefix = entry.removeprefix("s3://").partition("/")
        if not _BUCKET_NAME.fullmatch(bucket):
            problems.append(
                f"CATALOG_BACKFILL_TARGETS: {entry!r} does not start with a bucket name (3-63 lowercase letters, "
                "digits, dots or hyphens): write bucket or bucket/prefix, e.g. products,archive/2024/."
            )
            continue
        target = BackfillTarget(bucket, prefix)
        if target not in targets:
            targets.append(target)
    return tuple(targets), problems


def cron_problems(expression: str) -> list[str]:
    """Problems with a five-field cron expression (empty when Celery's crontab accepts it)."""
    from celery.schedules import crontab

    example = f"use five fields (minute hour day-of-month month day-of-week), e.g. '{DEFAULT_BACKFILL_CRON}'"
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return [f"CATALOG_BACKFILL_CRON={expression!r} has {len(fields)} fields: {example}."]
    # one field at a time, so the message names the field that is wrong
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        try:
            crontab(**{name: value})
        except ValueError as error:
            field = name.replace("_", "-")
            return [f"CATALOG_BACKFILL_CRON={expression!r}: bad {field} {value!r} ({error}); {example}."]
    try:
        crontab(**dict(zip(CRON_FIELDS, fields, strict=True)))
    except ValueError as error:
        return [f"CATALOG_BACKFILL_CRON={expression!r}: {error}; {example}."]
    return []
