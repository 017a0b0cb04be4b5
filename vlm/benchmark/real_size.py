"""The published sizes of Llama-3.2-11B-Vision and Qwen2-VL-7B, as configs to build with random weights.

Nothing can be downloaded, so the real checkpoints' architectures are built from their configs; speed
and memory depend on the sizes, not on the weights' values. The tokenizer is the small local one (its
ids are a subset of the real vocabulary), the processors are the real image processors at the real
resolutions. ``shrink=True`` keeps every structural feature (tiles, cross-attention layers, patch
merging) at toy sizes, so the same code path runs on a CPU in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import (
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessorPil,
    MllamaProcessor,
    PreTrainedTokenizerBase,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from vlm.architectures import base, mllama, qwen2_vl
from vlm.architectures.image_only import Qwen2VLImageOnlyProcessor
from vlm.tokenizer import build_tokenizer

#: Qwen2-VL images are resized to about this many pixels: 448 x 448 gives 256 visual tokens
QWEN_PIXELS = 448 * 448


@dataclass
class RealSizeBuild:
    """A config to instantiate, the processor that feeds it, and what the model is called.

    model_class: the transformers class to build. config: its config at the published sizes.
    processor: the image processor at the real resolution with the local tokenizer.
    tokenizer: that tokenizer. stop_tokens: the family's end-of-turn tokens.
    """

    name: str
    model_class: type
    config: Any
    processor: Any
    tokenizer: PreTrainedTokenizerBase
    stop_tokens: tuple[str, ...]


def _mllama_sizes(shrink: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    if shrink:
        # every width a multiple of 64: bitsandbytes' packed CPU kernel (AVX-512 BF16 machines) quantizes
        # in blocks of 64 input features and refuses narrower layers
        vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_global_layers": 1}
        vision |= {"attention_heads": 2, "image_size": 56, "intermediate_layers_indices": [0], "vision_output_dim": 128}
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 2}
        text |= {"num_key_value_heads": 1, "cross_attention_layers": [1, 3], "vocab_size": None}
        return vision, text
    # meta-llama/Llama-3.2-11B-Vision-Instruct's config.json
    vision = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_global_layers": 8}
    vision |= {"attention_heads": 16, "image_size": 560, "intermediate_layers_indices": [3, 7, 15, 23, 30]}
    vision |= {"vision_output_dim": 7680}
    text = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 40, "num_attention_heads": 32}
    text |= {"num_key_value_heads": 8, "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38], "vocab_size": 128256}
    return vision, text


def llama_vision_11b(shrink: bool = False) -> RealSizeBuild:
    """Llama-3.2-11B-Vision: 32 + 8 layer tiled ViT (4 tiles of 560 px), 40-layer decoder with 8 cross-attention."""
    tokenizer = build_tokenizer(mllama.TOKENIZER)
    vision, text = _mllama_sizes(shrink)
    side = vision["image_size"]
    image_processor = MllamaImageProcessorPil(size={"height": side, "width": side}, max_image_tiles=4)
    processor = MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=mllama.CHAT_TEMPLATE
    )
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0}
    rope |= {"high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    config = MllamaConfig(
        vision_config=vision | {"patch_size": 14, "max_num_tiles": 4},
        text_config=text
        | {
            "vocab_size": text["vocab_size"] or len(tokenizer),
            "max_position_embeddings": 131072,
            "rope_parameters": rope,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=base.token_id(tokenizer, "<|image|>"),
    )
    return RealSizeBuild(
        "llama-3.2-11b-vision", MllamaForConditionalGeneration, config, processor, tokenizer, mllama.STOP_TOKENS
    )


def qwen2_vl_7b(shrink: bool = False) -> RealSizeBuild:
    """Qwen2-VL-7B: 32-layer ViT with 2x2 patch merging into a 28-layer decoder with multimodal rotary positions."""
    tokenizer = build_tokenizer(qwen2_vl.TOKENIZER)
    pixels = 56 * 56 if shrink else QWEN_PIXELS
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": pixels, "longest_edge": pixels}, patch_size=14, merge_size=2
    )
    processor = Qwen2VLImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=qwen2_vl.CHAT_TEMPLATE
    )
    if shrink:
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}
        text |= {"num_key_value_heads": 1, "vocab_size": len(tokenizer), "mrope_section": [4, 6, 6]}
        vision = {"depth": 2, "embed_dim": 64, "num_heads": 2}
    else:
        # Qwen/Qwen2-VL-7B-Instruct's config.json
        text = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28}
        text |= {"num_key_value_heads": 4, "vocab_size": 152064, "mrope_section": [16, 24, 24]}
        vision = {"depth": 32, "embed_dim": 1280, "num_heads": 16}
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": text.pop("mrope_section")}
    config = Qwen2VLConfig(
        text_config=text
        | {
            "max_position_embeddings": 32768,
            "rope_parameters": rope,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=vision
        | {"hidden_size": text["hidden_size"], "mlp_ratio": 4, "patch_size": 14, "spatial_merge_size": 2}
        | {"temporal_patch_size": 2},
        image_token_id=base.token_id(tokenizer, "<|image_pad|>"),
        video_token_id=base.token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=base.token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=base.token_id(tokenizer, "<|vision_end|>"),
    )
    return RealSizeBuild(
        "qwen2-vl-7b", Qwen2VLForConditionalGeneration, config, processor, tokenizer, qwen2_vl.STOP_TOKENS
    )


#: the real-size architectures ``catalog bench --gpu`` measures
REAL_SIZE_MODELS: dict[str, Callable[[bool], RealSizeBuild]] = {
    "llama-3.2-11b-vision": llama_vision_11b,
    "qwen2-vl-7b": qwen2_vl_7b,
}
