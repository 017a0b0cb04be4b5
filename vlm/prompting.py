"""Model inputs for each vision-language family: the one place that knows their quirks.

Families differ in how the prompt is written (a chat template, or a plain "Question: ... Answer:"
format where the processor has none), in how images are nested (one list per sample for Mllama and
Gemma 3, a flat list elsewhere), in which token closes the assistant turn, and in processor details
(Kosmos-2's image-token count). Training and inference both build their inputs here, so the prompt
a model is fine-tuned on is exactly the prompt it is served with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedConfig, ProcessorMixin

from catalog_enrich import schema
from vlm.architectures.image_only import register_image_only_processors

# loading a saved tiny Qwen2-VL or LLaVA-OneVision processor needs these classes resolvable
register_image_only_processors()

#: label value the loss ignores
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Family:
    """How one model family wants its inputs.

    nested_images: the processor takes one list of images per sample instead of a flat list.
    end_token: the token that closes the assistant turn (None: the tokenizer's eos token).
    plain_prompt: prompt format for families without a chat template; ``{instruction}`` is filled in.
    answer_separator: text between the prompt and the target (a space after "Answer:").
    """

    nested_images: bool = False
    end_token: str | None = None
    plain_prompt: str | None = None
    answer_separator: str = ""


#: config.model_type -> family; BLIP-2 and Kosmos-2 use the question/answer format of their model cards
FAMILIES: dict[str, Family] = {
    "qwen2_vl": Family(end_token="<|im_end|>"),
    "mllama": Family(nested_images=True, end_token="<|eot_id|>"),
    "gemma3": Family(nested_images=True, end_token="<end_of_turn>"),
    "llava_onevision": Family(end_token="<|im_end|>"),
    "blip-2": Family(plain_prompt="Question: {instruction} Answer:", answer_separator=" "),
    "kosmos-2": Family(plain_prompt="Question: {instruction} Answer:", answer_separator=" "),
}


class Prompter:
    """Builds model inputs for one family (chat template, image nesting, padding).

    processor: the model's processor (image processor + tokenizer), loaded with ``AutoProcessor``.
    config: the model's config; its ``model_type`` selects the family.
    family: the family's input conventions, normally looked up by ``for_model``.
    """

    def __init__(self, processor: ProcessorMixin, config: PreTrainedConfig, family: Family) -> None:
        if not isinstance(processor, ProcessorMixin):
            raise TypeError(
                f"expected a multimodal processor, got {type(processor).__name__}; AutoProcessor returns only "
                "the tokenizer when it cannot resolve the saved processor class (import vlm.architectures first)"
            )
        self.processor = processor
        self.config = config
        self.family = family
        self.tokenizer = processor.tokenizer
        self._prompt = self._render_prompt()
        self._end_text = family.end_token or self.tokenizer.eos_token
        # prompt ids per (image size, mode): the image-token expansion depends on nothing else
        self._prompt_ids: dict[tuple[tuple[int, int], str], list[int]] = {}

    @classmethod
    def for_model(cls, processor: ProcessorMixin, config: PreTrainedConfig) -> Prompter:
        """The prompter for the family named by ``config.model_type``."""
        family = FAMILIES.get(config.model_type)
        if family is None:
            raise ValueError(
                f"no prompt format for model type {config.model_type!r}; supported: {', '.join(sorted(FAMILIES))}"
            )
        return cls(processor, config, family)

    def _render_prompt(self) -> str:
        """The user turn (image + instruction) in the family's format, ready for the answer."""
        if self.family.plain_prompt is not None:
            return self.family.plain_prompt.format(instruction=schema.INSTRUCTION)
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": schema.INSTRUCTION}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def prompt_text(self) -> str:
        """The generation prompt: user turn with the image and the instruction, assistant turn opened."""
        return self._prompt

    @property
    def stop_token_ids(self) -> list[int]:
        """Token ids that end a generated answer (end of turn, then end of sequence)."""
        ids = [self.tokenizer.convert_tokens_to_ids(self._end_text), self.tokenizer.eos_token_id]
        return list(dict.fromkeys(i for i in ids if i is not None))

    def _processor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every processor call gets."""
        bos = self.tokenizer.bos_token
        # a chat template that writes the bos token itself must not get a second one from the tokenizer
        kwargs: dict[str, Any] = {
            "padding": True,
            "return_tensors": "pt",
            "add_special_tokens": not (bos and self._prompt.startswith(bos)),
        }
        if self.config.model_type == "kosmos-2":
            # the processor defaults to the full model's 64 latent queries
            kwargs["num_image_tokens"] = self.config.latent_query_num
        return kwargs

    def _encode(self, images: Sequence[Image.Image], texts: list[str]) -> BatchFeature:
        """Run the processor on one image per text, nested the way the family expects."""
        if not images:
            raise ValueError("no images to build inputs for")
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        arranged: list[Any] = [[image] for image in rgb] if self.family.nested_images else rgb
        return self.processor(images=arranged, text=texts, **self._processor_kwargs())

    def generation_inputs(self, images: Sequence[Image.Image]) -> BatchFeature:
        """Left-padded prompt inputs for ``generate``, one sample per image."""
        return self._encode(images, [self._prompt] * len(images))

    def _prompt_token_ids(self, image: Image.Image) -> list[int]:
        """The prompt's unpadded ids for an image of this size, computed once per size."""
        key = (image.size, image.mode)
        if key not in self._prompt_ids:
            encoded = self._encode([image], [self._prompt])
            ids, mask = encoded["input_ids"][0], encoded["attention_mask"][0]
            self._prompt_ids[key] = ids[mask.bool()].tolist()
        return self._prompt_ids[key]

    def training_inputs(self, images: Sequence[Image.Image], targets: Sequence[str]) -> BatchFeature:
        """Prompt + target + end token, with labels on the target and end token only."""
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        texts = [f"{self._prompt}{self.family.answer_separator}{target}{self._end_text}" for target in targets]
        inputs = self._encode(images, texts)
        labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
        for row, image in enumerate(images):
            prompt_ids = self._prompt_token_ids(image)
            # attended positions in order; padding may sit anywhere (BLIP-2 pads after its image tokens)
            positions = inputs["attention_mask"][row].nonzero().squeeze(-1)
            row_ids = inputs["input_ids"][row, positions]
            if row_ids[: len(prompt_ids)].tolist() != prompt_ids:
                raise ValueError(
                    f"the prompt does not tokenize as a prefix of prompt + target for row {row}; "
                    "the target's first characters merge with the prompt's last token"
                )
            answer = positions[len(prompt_ids) :]
            labels[row, answer] = inputs["input_ids"][row, answer]
        inputs["labels"] = labels
        return inputs

    def decode(self, sequences: torch.Tensor, inputs: BatchFeature) -> list[str]:
        """The newly generated text of each sample, special tokens removed."""
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in texts]
