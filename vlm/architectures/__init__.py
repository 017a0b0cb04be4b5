"""Tiny, randomly initialised vision-language models of real transformers architectures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from vlm.architectures import base, blip2, gemma3, kosmos2, llava_onevision, mllama, qwen2_vl
from vlm.architectures.base import METADATA_FILE
from vlm.architectures.image_only import register_image_only_processors

__all__ = ["ARCHITECTURES", "DEFAULT_ARCHITECTURE", "METADATA_FILE", "build_tiny_model"]

register_image_only_processors()

#: architecture name -> builder of a fresh model and processor (seed torch first)
ARCHITECTURES: dict[str, Callable[[], base.TinyBuild]] = {
    "qwen2_vl": qwen2_vl.build,
    "gemma3": gemma3.build,
    "mllama": mllama.build,
    "llava_onevision": llava_onevision.build,
    "blip2": blip2.build,
    "kosmos2": kosmos2.build,
}

#: the architecture tests and the demo use unless told otherwise
DEFAULT_ARCHITECTURE = "gemma3"


def build_tiny_model(arch: str, out_dir: Path, *, seed: int = 0) -> Path:
    """Build the tiny ``arch`` model with weights drawn from ``seed`` and save it under ``out_dir``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}")
    torch.manual_seed(seed)
    build = ARCHITECTURES[arch]()
    return base.save_build(build, Path(out_dir), arch=arch, seed=seed)
