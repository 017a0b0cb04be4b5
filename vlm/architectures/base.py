"""What every tiny architecture shares: its sizes, generation settings and the saved layout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

#: width of the language model; big enough to learn the synthetic task, small enough for CPU tests
TEXT_HIDDEN = 128
#: decoder layers of the language model
TEXT_LAYERS = 2
#: attention heads of the language model (head_dim 32)
TEXT_HEADS = 4
#: key/value heads of the language model (grouped-query attention, as the full-size models use)
TEXT_KV_HEADS = 2
#: width of the vision tower
VISION_HIDDEN = 64
#: encoder layers of the vision tower
VISION_LAYERS = 2
#: attention heads of the vision tower
VISION_HEADS = 4
#: side of the square image the vision tower sees
IMAGE_SIZE = 64
#: side of one vision patch (64 / 8 = 8 x 8 patches)
PATCH_SIZE = 8
#: written next to the weights so a model directory says what it is
METADATA_FILE = "tiny_model.json"


@dataclass
class TinyBuild:
    """A freshly initialised model and the processor that feeds it.

    model: the randomly initialised image-text-to-text model.
    processor: the processor (image processor + tokenizer + chat template) saved beside it.
    """

    model: PreTrainedModel
    processor: ProcessorMixin


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of a token that must exist in the vocabulary."""
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise ValueError(f"token {token!r} is not in the vocabulary")
    return found


def configure_generation(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stop_tokens: Sequence[str]
) -> None:
    """Stop generation at the family's end-of-turn tokens and pad with its pad token."""
    stop_ids = [token_id(tokenizer, token) for token in stop_tokens]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )


def parameter_count(model: PreTrainedModel) -> int:
    """All parameters of the model, trainable or not."""
    return sum(parameter.numel() for parameter in model.parameters())


def save_build(build: TinyBuild, out_dir: Path, *, arch: str, seed: int) -> Path:
    """Save model, processor and metadata so ``from_pretrained(out_dir)`` loads them like a hub model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build.model.save_pretrained(out_dir)
    build.processor.save_pretrained(out_dir)
    metadata = {
        "arch": arch,
        "model_type": build.model.config.model_type,
        "seed": seed,
        "parameters": parameter_count(build.model),
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return out_dir
