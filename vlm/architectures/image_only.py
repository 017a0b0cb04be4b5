"""Processors for families whose stock processor also wants a video processor.

Qwen2VLProcessor and LlavaOnevisionProcessor take a video processor, and every transformers video
processor needs torchvision, which has no CPU build here. Even passing a placeholder fails: the
processor's type check resolves ``VideoProcessorMixin`` through the torchvision-only auto mapping.
The subclasses below drop the video argument and behave identically on images.

Loading a saved directory in a fresh process: ``processor_config.json`` names the processor class, and
transformers resolves that name only among its own classes and those registered with
``AutoProcessor.register``. Unresolved, a plain ``AutoProcessor.from_pretrained`` used to fall back
silently to returning only the tokenizer. transformers has no plugin hook, so no import-free plain load
exists; instead:

- ``import vlm.architectures`` (or ``vlm.prompting``) registers both classes, after which the plain call
  returns the full processor. ``exist_ok=True`` matters: for a config class that belongs to
  transformers, ``register`` without it returns silently and registers nothing.
- Both classes are also registered for the auto class, so ``save_pretrained`` copies this module into the
  directory with an ``auto_map``: without the import, the plain call now stops with an error asking for
  ``trust_remote_code=True``, and with that flag it loads the full processor with no import at all.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionProcessor,
    PreTrainedTokenizerBase,
    Qwen2VLConfig,
    Qwen2VLProcessor,
)
from transformers.image_processing_utils import ImageProcessingMixin


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without the video processor (images only, no torchvision needed)."""

    def __init__(
        self,
        image_processor: ImageProcessingMixin | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        # the parent passes (image_processor, tokenizer, None) on; ProcessorMixin pairs positional
        # arguments with this signature's two sub-processors, so the missing video processor is dropped
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
    """LlavaOnevisionProcessor without the video processor (images only, no torchvision needed)."""

    def __init__(
        self,
        image_processor: ImageProcessingMixin | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        num_image_tokens: int | None = None,
        vision_feature_select_strategy: str | None = None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        **kwargs: Any,
    ) -> None:
        # same positional pairing as above: the None in the video slot is dropped by ProcessorMixin
        super().__init__(
            image_processor,
            tokenizer,
            None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


# saving copies this module next to the weights, for loading with trust_remote_code and no import
Qwen2VLImageOnlyProcessor.register_for_auto_class()
LlavaOnevisionImageOnlyProcessor.register_for_auto_class()


def register_image_only_processors() -> None:
    """Make ``AutoProcessor`` resolve the image-only processor classes saved in a model directory."""
    AutoProcessor.register(Qwen2VLConfig, Qwen2VLImageOnlyProcessor, exist_ok=True)
    AutoProcessor.register(LlavaOnevisionConfig, LlavaOnevisionImageOnlyProcessor, exist_ok=True)
