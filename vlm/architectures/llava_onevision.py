"""Tiny LLaVA-OneVision: SigLIP tower with any-resolution crops, MLP projector, Qwen2 decoder."""

from __future__ import annotations

from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
)

from vlm.architectures import base
from vlm.architectures.image_only import LlavaOnevisionImageOnlyProcessor
from vlm.tokenizer import TokenizerSpec, build_tokenizer

#: LLaVA-OneVision sees a resized base image plus crops; 16-pixel patches keep that at 36 tokens
PATCH_SIZE = 16

#: LLaVA-OneVision's chat template: images first, then each text on its own line
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for part in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + part['text'] }}{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TOKENIZER = TokenizerSpec(
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    chat_template=CHAT_TEMPLATE,
    extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
)

#: generation ends at the end of the assistant turn (or end of text)
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def build() -> base.TinyBuild:
    """A randomly initialised tiny LLaVA-OneVision and its processor (call after seeding torch)."""
    tokenizer = build_tokenizer(TOKENIZER)
    side = base.IMAGE_SIZE
    # a single 64 x 64 grid point: every image becomes one base view plus one crop
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": side, "width": side}, image_grid_pinpoints=[[side, side]]
    )
    processor = LlavaOnevisionImageOnlyProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=(side // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 2 * base.VISION_HIDDEN,
            "num_hidden_layers": base.VISION_LAYERS,
            "num_attention_heads": base.VISION_HEADS,
            "image_size": side,
            "patch_size": PATCH_SIZE,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": base.TEXT_HIDDEN,
            "intermediate_size": 2 * base.TEXT_HIDDEN,
            "num_hidden_layers": base.TEXT_LAYERS,
            "num_attention_heads": base.TEXT_HEADS,
            "num_key_value_heads": base.TEXT_KV_HEADS,
            "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=base.token_id(tokenizer, "<image>"),
        video_token_index=base.token_id(tokenizer, "<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[side, side]],
    )
    model = LlavaOnevisionForConditionalGeneration(config)
    base.configure_generation(model, tokenizer, STOP_TOKENS)
    return base.TinyBuild(model=model, processor=processor)
