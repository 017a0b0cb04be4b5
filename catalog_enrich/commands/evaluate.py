"""``catalog evaluate``: the worker's engine on labelled images, with accuracy and validity gates."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "evaluate base (+ adapter) on labelled images with the same engine the worker runs"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--base", required=True, help="base model directory or hub id")
    parser.add_argument("--adapter", default=None, help="adapter directory or s3:// URI")
    parser.add_argument("--data", required=True, type=Path, help="parquet file of labelled images")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="write the metrics here")
    parser.add_argument("--quantization", choices=["nf4", "int8", "none", "auto"], default="auto")
    parser.add_argument(
        "--precision", choices=["auto", "float32", "bfloat16"], default="auto", help="auto: bf16 where it is native"
    )
    parser.add_argument("--decoding", choices=["free", "constrained"], default="constrained")
    parser.add_argument("--attempts", type=int, default=3, help="generations per image before giving up")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--min-accuracy", type=float, default=None, help="fail if any field is below this")
    parser.add_argument("--max-dead-letter-rate", type=float, default=None, help="fail above this rate")


def gate_failures(metrics: dict, min_accuracy: float | None, max_dead_letter_rate: float | None) -> list[str]:
    """The gates the metrics miss, as readable lines."""
    failures = []
    if min_accuracy is not None:
        for key, value in metrics["field_accuracy"].items():
            if value < min_accuracy:
                failures.append(f"{key} accuracy {value:.3f} < {min_accuracy}")
    if max_dead_letter_rate is not None and metrics["dead_letter_rate"] > max_dead_letter_rate:
        failures.append(f"dead-letter rate {metrics['dead_letter_rate']:.3f} > {max_dead_letter_rate}")
    return failures


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the JSON, apply the gates."""
    if not args.data.is_file():
        print(f"error: no such data file {args.data}; make one with `catalog synth`", file=sys.stderr)
        return 2
    import boto3

    from catalog_enrich.model_version import configured_model_version
    from catalog_enrich.settings import Settings
    from vlm.adapter_source import resolve_adapter
    from vlm.data.dataset import read_examples
    from vlm.engine import Engine
    from vlm.evaluation import evaluate_examples, format_report
    from vlm.loading import load_model

    settings = Settings.from_env()

    def s3_client() -> object:
        return boto3.client("s3", **settings.s3.client_kwargs())

    adapter_dir = resolve_adapter(args.adapter, settings.home / "adapters", s3_client) if args.adapter else None
    version = configured_model_version(args.base, args.adapter, s3_client)
    loaded = load_model(
        args.base, adapter_dir, quantization=args.quantization, version=version, precision=args.precision
    )
    engine = Engine(loaded, decoding=args.decoding, max_attempts=args.attempts)
    examples = read_examples(args.data)[: args.limit]
    metrics = evaluate_examples(engine, examples, batch_size=args.batch_size)
    metrics |= {
        "model_version": loaded.version,
        "quantization": loaded.quantization,
        "precision": str(loaded.dtype).removeprefix("torch."),
        "decoding": args.decoding,
    }
    print(format_report(metrics))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(metrics, indent=2))
    failures = gate_failures(metrics, args.min_accuracy, args.max_dead_letter_rate)
    for failure in failures:
        print(f"gate missed: {failure}", file=sys.stderr)
    return 1 if failures else 0
