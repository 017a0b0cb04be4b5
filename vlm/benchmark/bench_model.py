"""Bench-size models: a tiny architecture's processor and tokenizer with a wider, deeper network.

The tiny test models (under a million parameters) run so fast on a CPU that Python overhead and
plumbing dominate any timing. A bench-size model keeps the tiny build's processor, tokenizer and image
size and overrides only the network sizes in its config, so the model's own arithmetic dominates,
as it does for a real checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlm.architectures import ARCHITECTURES, base

#: architectures whose config this module knows how to resize
SCALABLE_ARCHITECTURES = ("gemma3", "qwen2_vl")

#: width of one attention head in every bench-size network
HEAD_DIM = 64


@dataclass(frozen=True)
class NetworkSize:
    """The sizes a bench model overrides.

    text_hidden, text_layers: width and depth of the language model (heads of ``HEAD_DIM``, half as
    many key/value heads, MLP four times as wide). vision_hidden, vision_layers: the same for the
    vision tower.
    """

    text_hidden: int
    text_layers: int
    vision_hidden: int
    vision_layers: int


#: about 35M parameters: big enough that the network, not Python, dominates a CPU generate step
BENCH_SIZE = NetworkSize(text_hidden=512, text_layers=8, vision_hidden=256, vision_layers=4)

#: a few hundred thousand parameters, for checking that the benchmark code runs
SMOKE_SIZE = NetworkSize(text_hidden=128, text_layers=1, vision_hidden=64, vision_layers=1)


def _text_sizes(size: NetworkSize) -> dict[str, int]:
    heads = size.text_hidden // HEAD_DIM
    return {
        "hidden_size": size.text_hidden,
        "intermediate_size": 4 * size.text_hidden,
        "num_hidden_layers": size.text_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
    }


def _resize_gemma3(config: Any, size: NetworkSize) -> None:
    for name, value in _text_sizes(size).items():
        setattr(config.text_config, name, value)
    config.text_config.head_dim = HEAD_DIM
    config.text_config.query_pre_attn_scalar = HEAD_DIM
    config.text_config.layer_types = None
    vision = config.vision_config
    vision.hidden_size, vision.intermediate_size = size.vision_hidden, 4 * size.vision_hidden
    vision.num_hidden_layers, vision.num_attention_heads = size.vision_layers, size.vision_hidden // HEAD_DIM


def _resize_qwen2_vl(config: Any, size: NetworkSize) -> None:
    for name, value in _text_sizes(size).items():
        setattr(config.text_config, name, value)
    # Qwen2-VL's 1 : 1.5 : 1.5 split of the rotary half-dimension over time, height and width
    quarter = HEAD_DIM // 8
    config.text_config.rope_parameters["mrope_section"] = [quarter, 3 * quarter // 2, 3 * quarter // 2]
    config.text_config.layer_types = None
    vision = config.vision_config
    vision.embed_dim, vision.depth = size.vision_hidden, size.vision_layers
    vision.num_heads, vision.mlp_ratio = size.vision_hidden // HEAD_DIM, 4
    vision.hidden_size = size.text_hidden


def build_bench_model(arch: str, out_dir: Path, size: NetworkSize = BENCH_SIZE, *, seed: int = 0) -> Path:
    """Build a random-weight ``arch`` model of ``size`` and save it where ``from_pretrained`` loads it."""
    if arch not in SCALABLE_ARCHITECTURES:
        raise ValueError(f"no bench size for {arch!r}; choose one of: {', '.join(SCALABLE_ARCHITECTURES)}")
    torch.manual_seed(seed)
    tiny = ARCHITECTURES[arch]()
    config = tiny.model.config
    {"gemma3": _resize_gemma3, "qwen2_vl": _resize_qwen2_vl}[arch](config, size)
    # the config class recomputes derived fields (sliding-window layer pattern, rope) on reload
    config = type(config).from_dict(config.to_dict())
    model = type(tiny.model)(config)
    if arch == "gemma3":
        # transformers zero-initialises this projector (see vlm.architectures.gemma3)
        with torch.no_grad():
            model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.02)
    model.generation_config = tiny.model.generation_config
    build = base.TinyBuild(model=model.eval(), processor=tiny.processor)
    return base.save_build(build, Path(out_dir), arch=arch, seed=seed)
