"""Tiny real-architecture models: saved like hub checkpoints, reloaded anywhere, quantizable on CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    BitsAndBytesConfig,
)

from catalog_enrich import cli
from vlm.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, METADATA_FILE, build_tiny_model
from vlm.architectures.base import parameter_count
from vlm.prompting import Prompter

#: architecture -> (model class, processor class) that a plain Auto* load must give back
EXPECTED_CLASSES = {
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLImageOnlyProcessor"),
    "gemma3": ("Gemma3ForConditionalGeneration", "Gemma3Processor"),
    "mllama": ("MllamaForConditionalGeneration", "MllamaProcessor"),
    "llava_onevision": ("LlavaOnevisionForConditionalGeneration", "LlavaOnevisionImageOnlyProcessor"),
    "blip2": ("Blip2ForConditionalGeneration", "Blip2Processor"),
    "kosmos2": ("Kosmos2ForConditionalGeneration", "Kosmos2Processor"),
}

#: families whose stock processor wants a torchvision video processor; their saved image-only
#: processor class resolves only once ``vlm.architectures`` has registered it
NEEDS_REGISTRATION = ("qwen2_vl", "llava_onevision")

#: modules 8-bit loading must leave in float: Mllama's projector gets 5-D vision features, which the
#: CPU int8 matmul cannot take (lm_head is listed because a custom list replaces the default one)
INT8_SKIP_MODULES = {"mllama": ["multi_modal_projector", "lm_head"]}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on tiny matrices a second thread mostly waits, and on a busy CPU badly."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every architecture, built once with seed 0."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch, seed=0) for arch in sorted(ARCHITECTURES)}


def test_every_family_is_registered() -> None:
    assert set(ARCHITECTURES) == set(EXPECTED_CLASSES)
    assert DEFAULT_ARCHITECTURE in ARCHITECTURES


@pytest.mark.parametrize("arch", sorted(EXPECTED_CLASSES))
def test_reloads_like_a_hub_model(model_dirs: dict[str, Path], arch: str) -> None:
    model_dir = model_dirs[arch]
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model_class, processor_class = EXPECTED_CLASSES[arch]
    assert type(model).__name__ == model_class
    assert type(processor).__name__ == processor_class
    assert type(processor.image_processor).__name__.endswith("Pil")
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    assert metadata["arch"] == arch and metadata["seed"] == 0
    assert metadata["parameters"] == parameter_count(model) < 1_000_000
    generation = model.generation_config
    stop_ids = Prompter.for_model(processor, model.config).stop_token_ids
    assert set(stop_ids) <= set(generation.eos_token_id)
    assert generation.pad_token_id == processor.tokenizer.pad_token_id is not None
    assert processor.tokenizer.padding_side == "left"


@pytest.mark.parametrize("arch", sorted(EXPECTED_CLASSES))
def test_same_seed_same_bytes(model_dirs: dict[str, Path], tmp_path: Path, arch: str) -> None:
    again = build_tiny_model(arch, tmp_path / arch, seed=0)
    for name in ("model.safetensors", "tokenizer.json", "processor_config.json"):
        assert (again / name).read_bytes() == (model_dirs[arch] / name).read_bytes(), name
    other = build_tiny_model(arch, tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


#: what a brand-new interpreter's ``AutoProcessor.from_pretrained`` gives: the plain families need
#: nothing from this project; the registered ones refuse loudly, load with ``trust_remote_code`` from
#: the module saved beside the weights, and load plainly once ``vlm.architectures`` is imported
FRESH_PROCESS_LOADER = """
import sys
from transformers import AutoProcessor
plain, registered = sys.argv[1].split(","), sys.argv[2].split(",")
for path in plain:
    print("class:", type(AutoProcessor.from_pretrained(path)).__name__)
for path in registered:
    try:
        AutoProcessor.from_pretrained(path)
    except ValueError as error:
        assert "trust_remote_code=True" in str(error)
    else:
        raise AssertionError("a bare tokenizer came back silently")
    print("class:", type(AutoProcessor.from_pretrained(path, trust_remote_code=True)).__name__)
assert "vlm" not in sys.modules
import vlm.architectures
for path in registered:
    print("class:", type(AutoProcessor.from_pretrained(path)).__name__)
"""


def test_fresh_process_loads_the_full_processor(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    plain = [arch for arch in sorted(EXPECTED_CLASSES) if arch not in NEEDS_REGISTRATION]
    registered = list(NEEDS_REGISTRATION)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS_LOADER,
            ",".join(str(model_dirs[arch]) for arch in plain),
            ",".join(str(model_dirs[arch]) for arch in registered),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        # trust_remote_code copies the saved module into this cache
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = [EXPECTED_CLASSES[arch][1] for arch in plain + registered + registered]
    # the refused load prints its remote-code question (no newline) on stdout too
    loaded = re.findall(r"class: (\w+)", result.stdout)
    assert loaded == expected


def _generate_once(model_dir: Path, quantization: BitsAndBytesConfig) -> list[str]:
    """Load ``model_dir`` quantized and generate a few tokens for two images."""
    model = AutoModelForImageTextToText.from_pretrained(model_dir, quantization_config=quantization).eval()
    prompter = Prompter.for_model(AutoProcessor.from_pretrained(model_dir), model.config)
    inputs = prompter.generation_inputs([Image.new("RGB", (64, 64), "red"), Image.new("RGB", (60, 80), "blue")])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4)
    return prompter.decode(out, inputs)


@pytest.mark.parametrize("arch", sorted(EXPECTED_CLASSES))
def test_nf4_and_int8_generate_on_cpu(model_dirs: dict[str, Path], arch: str) -> None:
    nf4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    assert len(_generate_once(model_dirs[arch], nf4)) == 2
    int8 = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=INT8_SKIP_MODULES.get(arch))
    assert len(_generate_once(model_dirs[arch], int8)) == 2


def test_unknown_architecture_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2_vl"):
        build_tiny_model("paligemma", tmp_path)


def test_tiny_model_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "model"
    assert cli.main(["tiny-model", "--arch", "gemma3", "--seed", "3", "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    metadata = json.loads((out_dir / METADATA_FILE).read_text())
    assert str(out_dir) in printed and f"{metadata['parameters']:,}" in printed
    assert metadata["arch"] == "gemma3" and metadata["seed"] == 3

    assert cli.main(["tiny-model", "--arch", "paligemma", "--out", str(tmp_path / "nope")]) == 2
    error = capsys.readouterr().err
    assert "paligemma" in error and "qwen2_vl" in error and error.count("\n") == 1
    assert not (tmp_path / "nope").exists()
