"""Inference precision: which dtype and attention kernel a machine gets, and that bf16 keeps the answers."""

from __future__ import annotations

from io import BytesIO

import pytest
import torch
from PIL import Image

from catalog_enrich.schema import KEYS
from vlm import precision
from vlm.data.synth import synth_records
from vlm.engine import Engine
from vlm.loading import load_model
from vlm.precision import attention_kernel, inference_dtype

CPU = torch.device("cpu")


def with_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """Make torch.cpu's bf16 probes answer ``native`` (the machine's own CPU cannot be chosen)."""
    for probe in precision.NATIVE_BF16_PROBES:
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    with_native_bf16(monkeypatch, native)
    assert precision.cpu_has_native_bf16() is native
    assert inference_dtype("auto", CPU) == (torch.bfloat16 if native else torch.float32)


def test_explicit_precision_wins_over_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    with_native_bf16(monkeypatch, False)
    assert inference_dtype("bfloat16", CPU) == torch.bfloat16
    with_native_bf16(monkeypatch, True)
    assert inference_dtype("float32", CPU) == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        inference_dtype("fp8", CPU)


def test_bf16_on_a_cpu_uses_eager_attention() -> None:
    assert attention_kernel(torch.bfloat16, CPU) == "eager"
    assert attention_kernel(torch.float32, CPU) == "sdpa"
    assert attention_kernel(torch.bfloat16, torch.device("cuda")) == "sdpa"


def test_bf16_inference_agrees_with_fp32(trained_model) -> None:
    records = list(synth_records(24, 17))
    images = [Image.open(BytesIO(record["image"]["bytes"])).convert("RGB") for record in records]
    answers = {}
    for name in ("float32", "bfloat16"):
        loaded = load_model(str(trained_model.base), trained_model.adapter, quantization="none", precision=name)
        assert loaded.dtype == getattr(torch, name)
        # an unmerged adapter keeps fp32 (peft's default, for the rank-r products' precision); the base converts
        base = {p.dtype for name, p in loaded.model.named_parameters() if "lora_" not in name}
        assert base == {loaded.dtype}
        assert loaded.model.config._attn_implementation == attention_kernel(loaded.dtype, CPU)
        results = Engine(loaded, decoding="constrained", max_attempts=1).enrich(images)
        assert all(result.ok for result in results), [result.reason for result in results if not result.ok]
        answers[name] = [result.attributes for result in results]
    same = sum(a[key] == b[key] for a, b in zip(answers["float32"], answers["bfloat16"], strict=True) for key in KEYS)
    agreement = same / (len(images) * len(KEYS))
    assert agreement >= 0.9, agreement
    print(f"bf16 agrees with fp32 on {agreement:.3f} of the attributes")
