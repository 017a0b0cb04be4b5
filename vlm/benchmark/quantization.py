"""Speed and memory of one model under nf4, int8 and no quantization, each in a fresh process.

A process's peak resident set only ever grows, so measuring three loads in one process would report
the largest of them three times; each mode therefore runs in a process of its own
(``python -m vlm.benchmark.quantization``) that prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from catalog_enrich.settings import PRECISIONS

#: the quantization modes compared, as the loader names them
MODES = ("nf4", "int8", "none")


def measure_mode(
    base: str, mode: str, *, images: int, batch_size: int, tokens: int, seed: int, precision: str = "auto"
) -> dict[str, Any]:
    """Load ``base`` quantized as ``mode`` and time forced-length free decoding; runs in this process."""
    from io import BytesIO

    from PIL import Image

    from vlm.benchmark.memory import measure_peak
    from vlm.benchmark.throughput import engine_images_per_s, warm_up
    from vlm.data.synth import synth_records
    from vlm.loading import load_model, pick_device

    pictures = [Image.open(BytesIO(r["image"]["bytes"])).convert("RGB") for r in synth_records(images, seed)]
    device = pick_device()
    # loaded before the baseline in every mode, so no mode is charged for loading a library
    import bitsandbytes  # noqa: F401

    with measure_peak(device) as peak:
        started = time.perf_counter()
        loaded = load_model(base, None, quantization=mode, device=device, precision=precision)
        load_s = time.perf_counter() - started
        gc.collect()
        resident_mb = peak.now_mb()
        warm_up(loaded, pictures)
        rate = engine_images_per_s(loaded, pictures, batch_size, tokens)
    return {
        "images_per_s": rate,
        "peak_memory_mb": peak.peak_mb,
        "memory_measure": peak.kind,
        "resident_after_load_mb": resident_mb,
        "weights_mb": loaded.model.get_memory_footprint() / 2**20,
        "load_s": load_s,
        "batch_size": batch_size,
        "images": images,
        "forced_new_tokens": tokens,
        "dtype": str(loaded.dtype).removeprefix("torch."),
    }


def compare_modes(
    base: str,
    *,
    modes: Sequence[str] = MODES,
    images: int = 32,
    batch_size: int = 16,
    tokens: int = 48,
    seed: int = 3,
    timeout_s: float = 600,
    precision: str = "auto",
) -> dict[str, dict[str, Any]]:
    """``measure_mode`` for each mode, each in a fresh Python process; a failed mode reports its error."""
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        command = [sys.executable, "-m", "vlm.benchmark.quantization", "--base", base, "--mode", mode]
        command += ["--images", str(images), "--batch-size", str(batch_size), "--tokens", str(tokens)]
        command += ["--seed", str(seed), "--precision", precision]
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False, env=os.environ.copy()
        )
        lines = finished.stdout.strip().splitlines()
        if finished.returncode != 0 or not lines:
            tail = finished.stderr.strip().splitlines()[-1:] or ["no output"]
            results[mode] = {"error": f"exit {finished.returncode}: {tail[0][:300]}"}
        else:
            results[mode] = json.loads(lines[-1])
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure one mode and print its figures as one JSON line."""
    parser = argparse.ArgumentParser(description="speed and peak memory of one quantization mode")
    parser.add_argument("--base", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    args = parser.parse_args(argv)
    figures = measure_mode(
        args.base,
        args.mode,
        images=args.images,
        batch_size=args.batch_size,
        tokens=args.tokens,
        seed=args.seed,
        precision=args.precision,
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
