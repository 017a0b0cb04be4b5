"""``catalog synth``: write a parquet file of synthetic labelled product images."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

HELP = "Write synthetic product images with labels as a fashion-product-images-small parquet file."

#: the label columns whose distinct values the summary counts
_COVERED_COLUMNS = ("articleType", "baseColour", "gender", "season", "usage")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the synth options to the subcommand's parser."""
    parser.add_argument("--n", type=int, required=True, help="number of products to draw")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same n and seed give identical bytes")
    parser.add_argument("--out", type=Path, required=True, help="parquet file to write")
    parser.add_argument(
        "--images-dir", type=Path, default=None, help="also write each image as DIR/<articleType>/<id>.jpg"
    )


def _tally(records: Iterable[dict], seen: dict[str, set[str]]) -> Iterator[dict]:
    for record in records:
        for column in _COVERED_COLUMNS:
            seen[column].add(record[column])
        yield record


def _fail(message: str) -> int:
    print(f"catalog synth: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Draw the products, write the file (and images), print a one-line summary."""
    from vlm.data.catalogue import ARTICLE_TYPES, COLOUR_NAMES, GENDERS, SEASONS, USAGES
    from vlm.data.dataset import export_images, write_parquet
    from vlm.data.synth import synth_records

    if args.n <= 0:
        return _fail(f"--n must be a positive number of products, got {args.n}")
    if not args.out.parent.is_dir():
        return _fail(f"the folder of --out does not exist: {args.out.parent}; create it first")
    started = time.perf_counter()
    seen: dict[str, set[str]] = {column: set() for column in _COVERED_COLUMNS}
    records = _tally(synth_records(args.n, args.seed), seen)
    if args.images_dir is not None:
        records = export_images(records, args.images_dir)
    try:
        rows = write_parquet(records, args.out)
    except OSError as error:
        return _fail(f"cannot write {error.filename or args.out}: {error.strerror or error}")
    covered = sum(len(values) for values in seen.values())
    total = sum(len(values) for values in (ARTICLE_TYPES, COLOUR_NAMES, GENDERS, SEASONS, USAGES))
    per_column = ", ".join(f"{len(seen[column])} {column}" for column in _COVERED_COLUMNS)
    seconds = time.perf_counter() - started
    print(f"wrote {rows} rows to {args.out}: {covered}/{total} classes covered ({per_column}) in {seconds:.1f}s")
    return 0
