"""``enqueue``: send the images of a bucket prefix to the enrichment workers (see producer.command)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from catalog_enrich.settings import Settings, SettingsError
from producer.command import EXIT_ERROR, CommandOptions, run_command
from producer.preflight import ProducerError, first_line


def _since(value: str) -> datetime:
    """An ISO date or time; one without a zone is taken as UTC, the zone S3 reports times in."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date, e.g. 2025-01-31T12:00:00Z") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(value: str) -> int:
    """A whole number of at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``enqueue``."""
    parser = argparse.ArgumentParser(
        prog="enqueue", description="Send the images of a bucket prefix to the enrichment workers."
    )
    parser.add_argument("--bucket", help="S3 bucket holding the product images")
    parser.add_argument("--prefix", default="", help="only keys starting with this prefix")
    parser.add_argument("--since", type=_since, help="only objects modified at or after this ISO time (UTC)")
    parser.add_argument("--limit", type=_positive, help="enqueue at most this many images")
    parser.add_argument("--batch-size", type=_positive, help="images per message (default CATALOG_BATCH_SIZE)")
    parser.add_argument("--force", action="store_true", help="enqueue images already enriched by this model")
    parser.add_argument("--dry-run", action="store_true", help="list and dedupe, but record and send nothing")
    parser.add_argument("--resume", metavar="RUN_ID", help="resend a run's unfinished items instead of listing")
    parser.add_argument("--wait", action="store_true", help="follow the run until every image is final")
    parser.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 3)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument("--page-size", type=_positive, default=1000, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``enqueue`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.bucket is None) == (args.resume is None):
        parser.error("give either --bucket (a new run) or --resume RUN_ID")
    if args.timeout is not None and not args.wait:
        parser.error("--timeout only applies with --wait")
    options = CommandOptions(**vars(args))
    try:
        return run_command(options, Settings.from_env())
    except (SettingsError, ProducerError) as error:
        print(f"enqueue: {error}", file=sys.stderr)
    except Exception as error:
        # anything else from S3, the database or the broker: one line, not a traceback
        print(f"enqueue: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("enqueue: interrupted", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
