"""Real-size models on the accelerator: built in bf16 on the device, quantized to nf4, with a random LoRA.

Building from a config directly on the device (no save and reload: 20 GB of random weights would
take minutes to write) and quantizing each linear layer in place gives the memory layout a
``from_pretrained(..., quantization_config=nf4)`` load gives: every linear layer but the output head
in 4-bit, an unmerged LoRA adapter on top, as the worker serves a quantized base.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vlm.architectures import base
from vlm.benchmark.memory import MIB, measure_peak
from vlm.benchmark.real_size import REAL_SIZE_MODELS, RealSizeBuild
from vlm.loading import compute_dtype
from vlm.lora import lora_config
from vlm.prompting import Prompter

#: batch sizes measured on the accelerator
GPU_BATCH_SIZES = (1, 8, 16, 32, 64)

#: images timed at batch size 1 (one generate call each)
SINGLE_IMAGE_CALLS = 8

#: the seed recipe's adapter: rank 8, alpha 16
LORA_RANK, LORA_ALPHA = 8, 16


def quantize_nf4_(model: torch.nn.Module, dtype: torch.dtype, skip: Sequence[str] = ("lm_head",)) -> int:
    """Replace every linear layer except ``skip`` with a bitsandbytes nf4 layer holding the same weights."""
    import bitsandbytes as bnb

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear or name in skip:
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=dtype,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4", module=layer
            )
            # Params4bit quantizes when moved to a real device; the float weight is freed with ``child``
            layer.weight = weight.to(child.weight.device)
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, layer)
            replaced += 1
    return replaced


def build_quantized(build: RealSizeBuild, device: torch.device) -> tuple[Any, int]:
    """The model with random weights on ``device``, nf4-quantized, with a random (non-zero) LoRA adapter;
    and its parameter count before quantization (nf4 packs two weights into one stored element)."""
    from peft import get_peft_model

    dtype = compute_dtype(device)
    with torch.device(device):
        model = build.model_class._from_config(build.config, dtype=dtype)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    base.configure_generation(model, build.tokenizer, build.stop_tokens)
    quantize_nf4_(model, dtype)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    config = lora_config(model, rank=LORA_RANK, alpha=LORA_ALPHA)
    # peft starts B at zero, which would make the adapter a no-op that costs nothing to apply
    config.init_lora_weights = False
    model = get_peft_model(model, config)
    # only the adapter is cast: casting the whole model would turn the packed 4-bit weights into floats
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.to(dtype)
    return model.eval(), parameters


def time_batch(model: Any, prompter: Prompter, images: list[Image.Image], tokens: int, device: torch.device) -> float:
    """Seconds for one generate call over ``images`` writing exactly ``tokens`` new tokens each."""
    inputs = prompter.generation_inputs(images).to(device)
    if inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(compute_dtype(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def measure_model(
    name: str,
    images: Sequence[Image.Image],
    device: torch.device,
    *,
    batch_sizes: Sequence[int] = GPU_BATCH_SIZES,
    tokens: int = 48,
    single_calls: int = SINGLE_IMAGE_CALLS,
    shrink: bool = False,
) -> dict[str, Any]:
    """Build one real-size model and time it at each batch size; stops at the first out-of-memory batch.

    Batch size 1 is timed over ``single_calls`` calls, every other size over one call.
    """
    build = REAL_SIZE_MODELS[name](shrink)
    started = time.perf_counter()
    with measure_peak(device) as load_peak:
        model, parameters = build_quantized(build, device)
    figures: dict[str, Any] = {
        "parameters": parameters,
        "build_s": time.perf_counter() - started,
        "weights_mb": model.get_memory_footprint() / MIB,
        "load_peak_memory_mb": load_peak.peak_mb,
        "memory_measure": load_peak.kind,
        "quantization": "nf4",
        "lora_rank": LORA_RANK,
        "forced_new_tokens": tokens,
        "by_batch": {},
    }
    prompter = Prompter.for_model(build.processor, build.config)
    time_batch(model, prompter, list(images[:1]), 2, device)
    for size in batch_sizes:
        calls = single_calls if size == 1 else 1
        batch = [images[i % len(images)] for i in range(size)]
        try:
            with measure_peak(device) as peak:
                time_batch(model, prompter, batch, 2, device)
                seconds = sum(time_batch(model, prompter, batch, tokens, device) for _ in range(calls))
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            if not _is_out_of_memory(error):
                raise
            figures["by_batch"][str(size)] = {"error": "out of memory"}
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        figures["by_batch"][str(size)] = {"images_per_s": size * calls / seconds, "peak_memory_mb": peak.peak_mb}
    rates = {size: row["images_per_s"] for size, row in figures["by_batch"].items() if "images_per_s" in row}
    if "1" in rates:
        figures["batched_speedup"] = max(rates.values()) / rates["1"]
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return figures
