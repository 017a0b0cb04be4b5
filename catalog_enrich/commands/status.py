"""``catalog status [RUN_ID]``: a run's progress from the ledger, or a table of the latest runs."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "show a run's progress from the ledger (counts, rate, ETA), or the latest runs"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the optional run id and --json."""
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show (default: the latest runs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    """Print the progress; 1 with a one-line error for an unknown run or an unreachable database."""
    from sqlalchemy.orm import Session

    from catalog_enrich.run_status import (
        RECENT_RUNS,
        LedgerUnavailableError,
        connect_ledger,
        format_progress,
        format_runs,
        load_progress,
        recent_runs,
    )
    from catalog_enrich.settings import Settings, SettingsError

    try:
        engine = connect_ledger(Settings.from_env().require_database_url())
    except (SettingsError, LedgerUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        with Session(engine) as session:
            if args.run_id is None:
                runs = recent_runs(session, RECENT_RUNS)
                if args.json:
                    print(json.dumps([run.as_dict() for run in runs], indent=2))
                else:
                    print(format_runs(runs) if runs else "no runs yet: start one with `enqueue --bucket B`")
                return 0
            progress = load_progress(session, args.run_id)
    finally:
        engine.dispose()
    if progress is None:
        print(f"error: no run {args.run_id!r}; `catalog status` lists the latest runs", file=sys.stderr)
        return 1
    print(json.dumps(progress.as_dict(), indent=2) if args.json else format_progress(progress))
    return 0
