"""Tiny Qwen2-VL: ViT with 2x2 patch merging feeding a Qwen2 decoder with multimodal rotary positions."""

from __future__ import annotations

from transformers import (
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from vlm.architectures import base
from vlm.architectures.image_only import Qwen2VLImageOnlyProcessor
from vlm.tokenizer import TokenizerSpec, build_tokenizer

#: Qwen2-VL's chat template without the default system turn (shorter prompts, same turn markers)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TOKENIZER = TokenizerSpec(
    special_tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ),
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    chat_template=CHAT_TEMPLATE,
    extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
)

#: generation ends at the end of the assistant turn (or end of text, as Qwen2-VL's own config says)
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def build() -> base.TinyBuild:
    """A randomly initialised tiny Qwen2-VL and its processor (call after seeding torch)."""
    tokenizer = build_tokenizer(TOKENIZER)
    pixels = base.IMAGE_SIZE * base.IMAGE_SIZE
    # min = max pixels: every image is resized to about 64 x 64, i.e. 16 merged image tokens
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": pixels, "longest_edge": pixels}, patch_size=base.PATCH_SIZE, merge_size=2
    )
    processor = Qwen2VLImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    head_dim = base.TEXT_HIDDEN // base.TEXT_HEADS
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": base.TEXT_HIDDEN,
            "intermediate_size": 2 * base.TEXT_HIDDEN,
            "num_hidden_layers": base.TEXT_LAYERS,
            "num_attention_heads": base.TEXT_HEADS,
            "num_key_value_heads": base.TEXT_KV_HEADS,
            "max_position_embeddings": 1024,
            # temporal/height/width sections of the rotary half-dimension, in Qwen2-VL's 1:1.5:1.5 ratio
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": base.VISION_LAYERS,
            "embed_dim": base.VISION_HIDDEN,
            "hidden_size": base.TEXT_HIDDEN,
            "num_heads": base.VISION_HEADS,
            "mlp_ratio": 2,
            "patch_size": base.PATCH_SIZE,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=base.token_id(tokenizer, "<|image_pad|>"),
        video_token_id=base.token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=base.token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=base.token_id(tokenizer, "<|vision_end|>"),
    )
    assert sum(config.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    model = Qwen2VLForConditionalGeneration(config)
    base.configure_generation(model, tokenizer, STOP_TOKENS)
    return base.TinyBuild(model=model, processor=processor)
