"""The number format and attention kernel inference runs with, picked for the machine.

bf16 halves the bytes every generate step reads and, on a CPU with native bf16 dot products (AVX-512
BF16 or AMX), doubles the rate of the matrix multiplies. On a 2-core AMD EPYC with AVX-512 BF16 and the
bench-size Gemma 3 (48 new tokens) it took batch 64 from 10.1 to 21.0 images/s and one image per call
from 1.56 to 2.4 images/s, but only with eager attention: PyTorch's CPU SDPA kernel in bf16 took
4.7 ms per decoding step at batch 64 against 1.5 ms for eager matmul + softmax (1.1 ms for SDPA in
fp32). Without native bf16 instructions the CPU emulates bf16 and fp32 is faster.

Training keeps its own dtype (``loading.compute_dtype``, fp32 on a CPU): the training recipe of the
tiny models was tuned, and its accuracy measured, in fp32.
"""

from __future__ import annotations

import torch

from catalog_enrich.settings import PRECISIONS

#: torch.cpu's probes for native bf16 arithmetic (absent from older torch builds)
NATIVE_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX tiles)."""
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in NATIVE_BF16_PROBES)


def inference_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The dtype of weights and activations for ``requested`` precision on ``device``.

    ``auto`` is bf16 on GPUs that support it and on CPUs with native bf16, fp32 elsewhere.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; use {', '.join(PRECISIONS)}")
    if requested == "float32":
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32


def attention_kernel(dtype: torch.dtype, device: torch.device) -> str:
    """The transformers attention implementation that is fastest for ``dtype`` on ``device``."""
    # the CPU SDPA kernel has no fast bf16 path for one-token queries; eager matmuls do
    return "eager" if device.type == "cpu" and dtype == torch.bfloat16 else "sdpa"
