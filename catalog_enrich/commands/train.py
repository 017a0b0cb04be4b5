"""``catalog train``: LoRA fine-tuning of a base VLM on a parquet of labelled product images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "train a LoRA adapter on labelled product images (fashion-product-images-small layout)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--base", required=True, help="base model directory or hub id")
    parser.add_argument("--data", required=True, type=Path, help="parquet file of labelled images")
    parser.add_argument("--out", required=True, type=Path, help="directory to save the adapter in")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default 1000)")
    parser.add_argument("--epochs", type=float, default=None, help="train for this many epochs instead")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-3)")
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank (default 16; alpha = 2 x rank)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default 16)")
    parser.add_argument("--qlora", action="store_true", help="train on a 4-bit (nf4) base")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Train, save, and print the held-out metrics."""
    if not args.data.is_file():
        print(f"error: no such data file {args.data}; make one with `catalog synth`", file=sys.stderr)
        return 2
    from dataclasses import replace

    from vlm.evaluation import format_report
    from vlm.training import TrainingSettings, train_adapter

    settings = TrainingSettings(qlora=args.qlora, seed=args.seed, epochs=args.epochs)
    overrides = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size}
    if args.rank is not None:
        overrides |= {"rank": args.rank, "alpha": 2 * args.rank}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    metadata = train_adapter(args.base, args.data, args.out, settings)
    print(f"adapter saved to {args.out} in {metadata['train_seconds']} s, final loss {metadata['final_loss']:.4f}")
    if metadata["holdout_metrics"]:
        print(f"held-out ({metadata['holdout_examples']} images):")
        print(format_report(metadata["holdout_metrics"]))
    print(json.dumps({"adapter": str(args.out), "final_loss": metadata["final_loss"]}))
    return 0
