"""``catalog reliability``: crash, outage and hostile-input scenarios against real workers and servers."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

HELP = "break workers, Redis, PostgreSQL, S3, images and the model mid-run; show nothing is lost or doubled"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    from catalog_enrich.reliability.scenarios import SCENARIOS

    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="write the rows here as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller runs (the size the test suite uses)")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SCENARIOS),
        metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--logs", type=Path, default=None, help="folder for worker logs (default CATALOG_HOME/logs)")


def _say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the scenarios; exit 1 when any lost or duplicated an image or did not complete."""
    from catalog_enrich.demo import ensure_model
    from catalog_enrich.reliability.harness import Harness, Model
    from catalog_enrich.reliability.scenarios import FULL, QUICK, SCENARIOS
    from catalog_enrich.reliability.suite import header, row, run_scenarios, write_json
    from catalog_enrich.settings import Settings

    home = Settings.from_env().home
    base, adapter = ensure_model(home, _say)
    log_dir = args.logs or home / "logs" / "reliability"
    log_dir.mkdir(parents=True, exist_ok=True)
    harness = Harness(home, Model(base, adapter), log_dir)
    _say(f"starting the suite's own servers under {harness.home} (worker logs in {log_dir})")
    harness.up()
    names = args.only or list(SCENARIOS)
    print(header(), flush=True)
    scale = QUICK if args.quick else FULL
    results = run_scenarios(
        harness,
        names,
        scale,
        on_result=lambda result: print(row(result), flush=True),
        on_start=lambda name: _say(f"{name}: {SCENARIOS[name].__doc__}"),
    )
    failed = [result.name for result in results if not result.passed]
    if args.json_out:
        stamp = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "scale": "quick" if args.quick else "full"}
        write_json(results, args.json_out, stamp)
        _say(f"wrote {args.json_out}")
    _say(f"stop the suite's servers with: CATALOG_HOME={harness.home} catalog services down")
    if failed:
        _say(f"not passed: {', '.join(failed)}")
        return 1
    return 0
