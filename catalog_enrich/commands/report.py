"""``catalog report RUN_ID --out report.html``: one self-contained HTML page about a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write a self-contained HTML report of a run: thumbnails, attributes, dead letters, charts, timings"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the run id, --out and --limit."""
    parser.add_argument("run_id", metavar="RUN_ID", help="the run to report on (`catalog status` lists them)")
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    parser.add_argument("--limit", type=int, default=None, help="enriched rows and dead letters shown (default 200)")


def run(args: argparse.Namespace) -> int:
    """Gather the run's data, render the page, write it; 1 with a one-line error when that fails."""
    from datetime import UTC, datetime

    import boto3
    from sqlalchemy.orm import Session

    from catalog_enrich.report_page import render_report
    from catalog_enrich.run_report import ROW_CAP, UnknownRunError, build_report
    from catalog_enrich.run_status import LedgerUnavailableError, connect_ledger
    from catalog_enrich.settings import Settings, SettingsError

    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"error: the folder of --out does not exist: {args.out.parent}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        engine = connect_ledger(settings.require_database_url())
    except (SettingsError, LedgerUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    s3 = boto3.client("s3", **settings.s3.client_kwargs())
    try:
        with Session(engine) as session:
            report = build_report(session, s3, args.run_id, cap=args.limit or ROW_CAP)
    except UnknownRunError:
        print(f"error: no run {args.run_id!r}; `catalog status` lists the latest runs", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    args.out.write_text(render_report(report, datetime.now(UTC)), encoding="utf-8")
    missing = sum(1 for image in report.images if image.thumbnail.data_uri is None)
    note = f", {missing} without thumbnail" if missing else ""
    print(
        f"wrote {args.out}: {len(report.images)} of {report.enriched_total} enriched images{note}, "
        f"{len(report.dead_letters)} of {report.dead_letters_total} dead letters"
    )
    return 0
