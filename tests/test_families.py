"""Every supported model family through the whole path: build, LoRA-train, load in nf4 with the adapter,
batched constrained generation, validation."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest
import torch
from PIL import Image

from catalog_enrich.schema import KEYS
from vlm.architectures import ARCHITECTURES, build_tiny_model
from vlm.data.dataset import write_parquet
from vlm.data.synth import synth_records
from vlm.engine import Engine
from vlm.loading import load_model
from vlm.training import ADAPTER_METADATA, TrainingSettings, train_adapter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def training_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("families") / "train.parquet"
    write_parquet(synth_records(40, 7), path)
    return path


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_family_trains_quantizes_and_returns_valid_attributes(arch: str, training_data: Path, tmp_path: Path):
    base = build_tiny_model(arch, tmp_path / "base")
    adapter = tmp_path / "adapter"
    metadata = train_adapter(str(base), training_data, adapter, TrainingSettings(steps=6, batch_size=8))
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / ADAPTER_METADATA).read_text())["train_examples"] == metadata["train_examples"]

    loaded = load_model(str(base), adapter, quantization="nf4", device=torch.device("cpu"))
    assert loaded.quantization == "nf4"
    assert any(type(m).__name__ == "Linear4bit" for m in loaded.model.modules())
    images = [Image.open(BytesIO(r["image"]["bytes"])).convert("RGB") for r in synth_records(3, 8)]
    results = Engine(loaded, decoding="constrained", max_attempts=2).enrich(images)
    assert len(results) == 3
    for result in results:
        assert result.ok, (arch, result.reason, result.raw_output[:200])
        assert list(result.attributes) == list(KEYS)


def test_qlora_trains_on_a_4bit_base_on_cpu(training_data: Path, tmp_path: Path):
    base = build_tiny_model("gemma3", tmp_path / "base")
    settings = TrainingSettings(steps=4, batch_size=8, qlora=True)
    metadata = train_adapter(str(base), training_data, tmp_path / "adapter", settings)
    assert metadata["settings"]["qlora"] is True and metadata["final_loss"] == metadata["final_loss"]  # not NaN
    loaded = load_model(str(base), tmp_path / "adapter", quantization="nf4", device=torch.device("cpu"))
    from peft import PeftModel

    # a quantized base keeps the adapter separate: merging would re-round the 4-bit weights
    assert isinstance(loaded.model, PeftModel)
