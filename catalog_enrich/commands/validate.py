"""``catalog validate``: a filter from raw model outputs to verdicts, one line in, one line out.

Each input line is one raw output as a JSON-encoded string (what ``json.dumps(text)`` writes). Each output
line is the verdict's JSON. Every input line, blank ones included, gets exactly one verdict, so line N of
the output always answers line N of the input. Rejections are data, not failures: the exit status is 0
whatever the verdicts, and 2 only for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from catalog_enrich.validation import Verdict, rejected, validate_output

HELP = "Validate raw model outputs (one JSON-encoded string per line on stdin) into JSON verdicts."


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``catalog validate``."""
    parser.add_argument(
        "--summary", action="store_true", help="print how many outputs passed and failed to stderr at the end"
    )


def run(args: argparse.Namespace) -> int:
    """Read stdin line by line and write one verdict per line to stdout, flushing each."""
    if sys.stdin.isatty():
        print("reading raw outputs from stdin, one JSON string per line; end with Ctrl-D", file=sys.stderr)
    out: BinaryIO = sys.stdout.buffer
    passed = failed = 0
    try:
        for verdict in verdicts(sys.stdin.buffer):
            # bytes, not text: the output is UTF-8 whatever the locale, as JSON Lines requires
            line = json.dumps(verdict.to_json(), ensure_ascii=False, separators=(",", ":"))
            out.write(line.encode() + b"\n")
            out.flush()
            passed, failed = passed + verdict.ok, failed + (not verdict.ok)
    except BrokenPipeError:
        # the reader went away (``| head``): stop, and point stdout at /dev/null so the interpreter's own
        # final flush does not fail too (the recipe in Python's signal module documentation)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.summary:
        print(f"{passed + failed} outputs: {passed} ok, {failed} rejected", file=sys.stderr)
    return 0


def verdicts(lines: Iterable[bytes]) -> Iterator[Verdict]:
    """One verdict per input line."""
    for line in lines:
        yield verdict_for_line(line)


def verdict_for_line(line: bytes) -> Verdict:
    """The verdict for one input line: the validated output, or why the line itself is unusable."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return rejected("input line is not valid UTF-8")
    if not text.strip():
        return rejected("input line is blank")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raw = None
    if not isinstance(raw, str):
        return rejected("input line is not a JSON-encoded string")
    return validate_output(raw)
