"""``catalog tiny-model``: build a tiny randomly initialised vision-language model for tests and demos."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "build a tiny random-weight vision-language model of a real architecture and save it"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the tiny-model options."""
    parser.add_argument("--arch", default=None, help="architecture (default: the project default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="directory to save the model and processor in")


def run(args: argparse.Namespace) -> int:
    """Build and save the model; exit 2 on an unknown architecture."""
    from vlm.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, METADATA_FILE, build_tiny_model

    arch = args.arch or DEFAULT_ARCHITECTURE
    if arch not in ARCHITECTURES:
        print(f"unknown architecture {arch!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}", file=sys.stderr)
        return 2
    out_dir = build_tiny_model(arch, args.out, seed=args.seed)
    metadata = json.loads((out_dir / METADATA_FILE).read_text())
    print(f"saved tiny {arch} model to {out_dir} ({metadata['parameters']:,} parameters, seed {args.seed})")
    return 0
