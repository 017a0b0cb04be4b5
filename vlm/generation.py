"""One batched ``generate`` call over PIL images, in free or schema-constrained mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image

from vlm.constrained import SchemaLogitsProcessor, compile_schema
from vlm.loading import LoadedModel

DecodingMode = Literal["free", "constrained"]


@dataclass(frozen=True)
class DecodingPlan:
    """How one attempt decodes.

    mode: ``free`` or ``constrained`` (xgrammar JSON schema).
    max_new_tokens: the generation cap. temperature / top_p: sampling when ``temperature`` > 0, greedy
    otherwise. seed: makes a sampled attempt reproducible and different from the previous one.
    """

    mode: DecodingMode = "constrained"
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    seed: int = 0


def output_vocab_size(model: torch.nn.Module) -> int:
    """The width of the model's logits, which the grammar's token mask must match."""
    return int(model.get_output_embeddings().weight.shape[0])


def generate_outputs(loaded: LoadedModel, images: list[Image.Image], plan: DecodingPlan) -> list[str]:
    """The decoded text the model writes for each image (new tokens only, special tokens dropped)."""
    prompter = loaded.prompter
    inputs = prompter.generation_inputs(images).to(loaded.device)
    if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
    tokenizer = loaded.processor.tokenizer
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prompter.stop_token_ids[0]
    logits_processors = []
    if plan.mode == "constrained":
        compiled = compile_schema(tokenizer, output_vocab_size(loaded.model), prompter.stop_token_ids)
        logits_processors.append(SchemaLogitsProcessor(compiled, pad_token_id))
    sampling = plan.temperature > 0
    if sampling:
        torch.manual_seed(plan.seed)
    with torch.inference_mode():
        sequences = loaded.model.generate(
            **inputs,
            max_new_tokens=plan.max_new_tokens,
            do_sample=sampling,
            temperature=plan.temperature if sampling else None,
            top_p=plan.top_p if sampling else None,
            top_k=None,
            logits_processor=logits_processors,
            eos_token_id=prompter.stop_token_ids,
            pad_token_id=pad_token_id,
        )
    return prompter.decode(sequences, inputs)
