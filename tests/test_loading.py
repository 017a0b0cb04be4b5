"""Loading base + adapter: merged where merging is exact, unmerged where it would change the outputs."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from PIL import Image
from transformers import AutoModelForImageTextToText

from vlm.architectures import build_tiny_model
from vlm.data.synth import synth_records
from vlm.generation import DecodingPlan, generate_outputs
from vlm.loading import LoadedModel, has_tied_output_head, load_model
from vlm.lora import linear_module_names, lora_config

IMAGES = [Image.open(BytesIO(r["image"]["bytes"])).convert("RGB") for r in synth_records(3, 2)]


def random_adapter(base: Path, out: Path) -> Path:
    """An adapter with non-zero random deltas on every linear layer, the output head included."""
    model = AutoModelForImageTextToText.from_pretrained(base)
    config = lora_config(model, rank=4, alpha=8)
    config.init_lora_weights = False
    torch.manual_seed(1)
    get_peft_model(model, config).save_pretrained(out)
    return out


def reference_outputs(base: Path, adapter: Path, like: LoadedModel) -> list[str]:
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), str(adapter)).eval()
    unmerged = LoadedModel(model, like.processor, like.prompter, like.version, "none", like.device)
    return generate_outputs(unmerged, IMAGES, DecodingPlan("free", 24))


@pytest.mark.parametrize(("arch", "tied"), [("qwen2_vl", False), ("gemma3", True)])
def test_adapter_is_merged_only_when_that_keeps_the_outputs(arch: str, tied: bool, tmp_path: Path):
    base = build_tiny_model(arch, tmp_path / "base")
    adapter = random_adapter(base, tmp_path / "adapter")
    # in fp32, as the reference: this is about merging, not about rounding to bf16
    loaded = load_model(str(base), adapter, quantization="none", device=torch.device("cpu"), precision="float32")
    assert has_tied_output_head(AutoModelForImageTextToText.from_pretrained(base)) is tied
    assert isinstance(loaded.model, PeftModel) is tied
    assert generate_outputs(loaded, IMAGES, DecodingPlan("free", 24)) == reference_outputs(base, adapter, loaded)


def test_lora_reaches_vision_projector_language_and_head(tmp_path: Path):
    base = build_tiny_model("gemma3", tmp_path / "base")
    names = linear_module_names(AutoModelForImageTextToText.from_pretrained(base))
    assert any("vision_tower" in name for name in names)
    assert any("language_model" in name and "q_proj" in name for name in names)
    assert any(name.endswith("lm_head") for name in names)
