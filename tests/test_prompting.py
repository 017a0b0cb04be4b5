"""The prompting layer on every tiny architecture: labels, training signal, batched generation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel

from catalog_enrich import schema
from vlm.architectures import ARCHITECTURES, build_tiny_model
from vlm.prompting import IGNORE_INDEX, Prompter

TARGETS = (
    schema.target_json(
        {
            "product_name": "Men Navy Blue Tshirts",
            "product_type": "Tshirts",
            "color": "Navy Blue",
            "gender": "Men",
            "season": "Summer",
            "usage": "Casual",
        }
    ),
    schema.target_json(
        {
            "product_name": "Turtle Check Women Red Leather Handbags with Gold Buckle",
            "product_type": "Handbags",
            "color": "Red",
            "gender": "Women",
            "season": "Fall",
            "usage": "Smart Casual",
        }
    ),
)


def product_image(colour: str, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A plain product-like picture: a coloured shape on white."""
    image = Image.new("RGB", size, "white")
    width, height = size
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=colour)
    return image


#: different sizes on purpose: Qwen2-VL and LLaVA-OneVision then give rows different prompt lengths
IMAGES = (product_image("navy"), product_image("red", (60, 80)), product_image("green", (80, 60)))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on tiny matrices a second thread mostly waits, and on a busy CPU badly."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One saved tiny model per architecture."""
    return build_tiny_model(request.param, tmp_path_factory.mktemp(request.param), seed=0)


def load(model_dir: Path) -> tuple[PreTrainedModel, Prompter]:
    """The model and prompter, loaded the way a hub checkpoint is."""
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    return model, Prompter.for_model(processor, model.config)


def test_prompt_has_instruction_and_opens_the_answer(model_dir: Path) -> None:
    _, prompter = load(model_dir)
    prompt = prompter.prompt_text()
    assert schema.INSTRUCTION in prompt
    assert prompt.rstrip().endswith(("assistant", "model", "<|end_header_id|>", "Answer:"))
    assert prompter.stop_token_ids, "a family without stop tokens would generate to max_new_tokens"


def test_labels_cover_exactly_target_and_end_token(model_dir: Path) -> None:
    model, prompter = load(model_dir)
    inputs = prompter.training_inputs(IMAGES[:2], TARGETS)
    tokenizer = prompter.tokenizer
    end_text = prompter.family.end_token or tokenizer.eos_token
    for row, target in enumerate(TARGETS):
        labels = inputs["labels"][row]
        kept = labels != IGNORE_INDEX
        # the kept span is one contiguous block at the end of the row (left padding)
        first = int(kept.nonzero()[0])
        assert kept[first:].all()
        assert tokenizer.decode(labels[kept]) == prompter.family.answer_separator + target + end_text
        assert (labels[kept] == inputs["input_ids"][row][kept]).all()
    assert (inputs["attention_mask"] == 0).any(), "targets of different length must exercise padding"
    with torch.no_grad():
        loss = model(**inputs).loss
    assert torch.isfinite(loss)


def test_full_fine_tuning_lowers_loss_through_the_image_path(model_dir: Path) -> None:
    torch.manual_seed(0)
    model, prompter = load(model_dir)
    model.train()
    inputs = prompter.training_inputs(IMAGES[:2], TARGETS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(5):
        loss = model(**inputs).loss
        loss.backward()
        if step == 0:
            vision = [p.grad for n, p in model.named_parameters() if "vision" in n or "visual" in n]
            assert vision and any(g is not None and g.abs().sum() > 0 for g in vision)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_batched_generation_matches_single_image(model_dir: Path) -> None:
    model, prompter = load(model_dir)
    model.eval()
    batch = prompter.generation_inputs(IMAGES)
    single = prompter.generation_inputs(IMAGES[:1])
    assert batch["input_ids"].shape[0] == len(IMAGES)
    with torch.no_grad():
        batched_out = model.generate(**batch, max_new_tokens=8, do_sample=False)
        single_out = model.generate(**single, max_new_tokens=8, do_sample=False)
    texts = prompter.decode(batched_out, batch)
    assert len(texts) == len(IMAGES) and all(isinstance(text, str) for text in texts)
    assert texts[0] == prompter.decode(single_out, single)[0]
    new_batched = batched_out[0, batch["input_ids"].shape[1] :]
    new_single = single_out[0, single["input_ids"].shape[1] :]
    assert new_batched[: len(new_single)].tolist() == new_single.tolist()


def test_generation_stops_at_the_end_of_turn(model_dir: Path) -> None:
    model, prompter = load(model_dir)
    model.eval()
    end_id = prompter.stop_token_ids[0]
    calls = 0

    def force_end_on_third_token(module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls < 3:
            return logits
        forced = logits.clone()
        forced[..., end_id] = 1e4
        return forced

    model.get_output_embeddings().register_forward_hook(force_end_on_third_token)
    inputs = prompter.generation_inputs(IMAGES[:2])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=10)
    # only the saved generation_config says where to stop: nothing is passed to generate
    assert out.shape[1] - inputs["input_ids"].shape[1] == 3
    assert (out[:, -1] == end_id).all()


def test_prompter_refuses_a_bare_tokenizer(model_dir: Path) -> None:
    model, prompter = load(model_dir)
    with pytest.raises(TypeError, match="multimodal processor"):
        Prompter.for_model(prompter.tokenizer, model.config)


def test_unknown_model_type_is_named() -> None:
    config = type("Config", (), {"model_type": "paligemma"})()
    with pytest.raises(ValueError, match="paligemma"):
        Prompter.for_model(None, config)
