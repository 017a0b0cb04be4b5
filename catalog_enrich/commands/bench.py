"""``catalog bench``: speed and memory figures of the engine and the pipeline, measured side by side."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog_enrich.benchmark.scratch import Services

HELP = "measure batching, constrained decoding, quantization, producer, database and end-to-end speed"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="write every figure here")
    parser.add_argument("--quick", action="store_true", help="fewer images and smaller buckets (about 2 minutes)")
    parser.add_argument("--gpu", action="store_true", help="also build and time the real-size models on a GPU")
    parser.add_argument(
        "--gpu-tiny-configs",
        action="store_true",
        help="with --gpu: shrink the real-size configs to toy sizes so the path runs on a CPU",
    )
    parser.add_argument(
        "--sections",
        default=None,
        help="comma-separated subset of: engine, constrained, quantization, db, producer, pipeline, gpu",
    )
    parser.add_argument("--arch", choices=["gemma3", "qwen2_vl"], default="gemma3", help="bench model architecture")
    parser.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="the bench model's dtype (auto: bf16 where the CPU has native bf16)",
    )


def _say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _services(sections: set[str]) -> Services | None:
    """The servers the service sections use: those configured, else the local ones (started if needed)."""
    from catalog_enrich.benchmark.scratch import Services
    from catalog_enrich.benchmark.suite import SERVICE_SECTIONS
    from catalog_enrich.services import stack
    from catalog_enrich.settings import Settings

    if not sections & SERVICE_SECTIONS:
        return None
    home = Settings.from_env().home
    stack.up(home)
    os.environ.update(stack.env(home))
    settings = Settings.from_env()
    return Services(settings.require_database_url(), settings.require_broker_url(), settings.s3)


def run(args: argparse.Namespace) -> int:
    """Run the sections, print the table, write the JSON; exit 1 when a section could not be measured."""
    from catalog_enrich.benchmark.report import format_report
    from catalog_enrich.benchmark.suite import QUICK_PLAN, SECTIONS, BenchPlan, run_bench
    from catalog_enrich.settings import SettingsError

    if args.gpu_tiny_configs and not args.gpu:
        print("error: --gpu-tiny-configs only applies with --gpu", file=sys.stderr)
        return 2
    default = [name for name in SECTIONS if name != "gpu" or args.gpu]
    sections = args.sections.split(",") if args.sections else default
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"error: unknown sections {', '.join(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    plan = QUICK_PLAN if args.quick else BenchPlan()
    plan = dataclasses.replace(plan, arch=args.arch, gpu_shrink=args.gpu_tiny_configs, precision=args.precision)
    try:
        services = _services(set(sections))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = run_bench(plan, sections, services, _say)
    result["quick"] = args.quick
    print(format_report(result))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0
