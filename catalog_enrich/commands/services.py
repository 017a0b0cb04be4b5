"""``catalog services up|down|status|env``: the local PostgreSQL, Redis and S3 servers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "start, stop or inspect the local PostgreSQL, Redis and S3 servers (under CATALOG_HOME/services)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the action argument."""
    parser.add_argument(
        "action",
        choices=("up", "down", "status", "env"),
        help="up: start what is not running; down: stop; status: show; env: print `export` lines to eval",
    )


def run(args: argparse.Namespace) -> int:
    """Carry out the action; 1 when a server could not be started or stopped."""
    from catalog_enrich.services import stack
    from catalog_enrich.services.process import ServiceError
    from catalog_enrich.settings import SettingsError, catalog_home

    try:
        home = catalog_home()
        if args.action == "up":
            return _up(home)
        if args.action == "down":
            stopped = stack.down(home)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.action == "status":
            for status in stack.status(home):
                state = "running" if status.running else "stopped"
                print(f"{status.name:9} {state:8} {status.url or '-':28} {status.detail}")
        else:
            print("\n".join(stack.export_lines(stack.env(home))))
    except (ServiceError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _up(home: Path) -> int:
    from catalog_enrich.services import stack

    started_at = time.monotonic()
    results = stack.up(home)
    for result in results:
        status = result.status
        print(f"{status.name:9} {result.action:16} {status.url or '-':28} {status.detail}")
    print(f"ready in {time.monotonic() - started_at:.1f} s; point clients at them with:")
    print('  eval "$(catalog services env)"')
    return 0
