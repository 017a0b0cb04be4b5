"""``catalog beat``: Celery beat, which sends the nightly backfills and the reaper's passes on schedule.

Run exactly one: two beats send every tick twice. (A doubled backfill tick is harmless, the backfill
skips a target whose run is under way, but it is wasted work.) The schedule comes from the settings
(CATALOG_BACKFILL_CRON, CATALOG_BACKFILL_TARGETS, CATALOG_REAPER_INTERVAL); beat only remembers when each
entry last ran, in a file under CATALOG_HOME.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from catalog_enrich.commands.log_options import add_log_json, celery_flags, process_settings

HELP = "run Celery beat: nightly backfills of CATALOG_BACKFILL_TARGETS and the stalled-run reaper"

#: worker.main's switch for loading the model (not imported here: that would build the Celery app early)
PRELOAD_VARIABLE = "CATALOG_PRELOAD_MODEL"

#: the file beat keeps its last run times in, under CATALOG_HOME
SCHEDULE_FILE = "beat-schedule"

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--schedule-file",
        type=Path,
        default=None,
        help=f"where beat keeps its state (default CATALOG_HOME/{SCHEDULE_FILE})",
    )
    add_log_json(parser)


def beat_argv(schedule_file: Path, loglevel: str) -> list[str]:
    """The Celery beat command line."""
    return ["beat", f"--schedule={schedule_file}", f"--loglevel={loglevel}"]


def run(args: argparse.Namespace) -> int:
    """Check settings, log the schedule, then hand over to Celery beat."""
    os.environ[PRELOAD_VARIABLE] = "0"
    settings = process_settings(args, needs_database=False)
    if settings is None:
        return 2
    schedule_file = args.schedule_file or settings.home / SCHEDULE_FILE
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    targets = ", ".join(map(str, settings.backfill_targets))
    if targets:
        log.info("backfill of %s at %r (UTC)", targets, settings.backfill_cron)
    else:
        log.info("no CATALOG_BACKFILL_TARGETS: only the reaper is scheduled")
    log.info("reaper every %d s", settings.reaper_interval)
    from worker.main import app

    app.start([*celery_flags(settings), *beat_argv(schedule_file, args.loglevel)])
    return 0
