"""Tiny Mllama (Llama 3.2 Vision): tiled ViT whose features enter a Llama decoder by cross-attention."""

from __future__ import annotations

import torch
from transformers import (
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessorPil,
    MllamaProcessor,
)

from vlm.architectures import base
from vlm.tokenizer import TokenizerSpec, build_tokenizer

#: Llama 3.2 Vision's chat template without the date/system preamble
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

TOKENIZER = TokenizerSpec(
    special_tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
        "<|python_tag|>",
        "<|image|>",
    ),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
    pad_token="<|finetune_right_pad_id|>",
    chat_template=CHAT_TEMPLATE,
    extra_special_tokens={"image_token": "<|image|>"},
    add_bos_token=True,
)

#: generation ends at the end of the assistant turn (or end of text)
STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>")

#: decoder layers, one of which is a cross-attention layer reading the image
TEXT_LAYERS = 3


def build() -> base.TinyBuild:
    """A randomly initialised tiny Mllama and its processor (call after seeding torch)."""
    tokenizer = build_tokenizer(TOKENIZER)
    # one tile per image: the image is resized to a single 64 x 64 tile
    image_processor = MllamaImageProcessorPil(
        size={"height": base.IMAGE_SIZE, "width": base.IMAGE_SIZE}, max_image_tiles=1
    )
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    # Mllama concatenates the last layer with the intermediate layers listed here
    intermediate_layers = [0]
    config = MllamaConfig(
        vision_config={
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 2 * base.VISION_HIDDEN,
            "num_hidden_layers": base.VISION_LAYERS,
            "num_global_layers": 1,
            "attention_heads": base.VISION_HEADS,
            "image_size": base.IMAGE_SIZE,
            "patch_size": base.PATCH_SIZE,
            "max_num_tiles": 1,
            "supported_aspect_ratios": [[1, 1]],
            "intermediate_layers_indices": intermediate_layers,
            "vision_output_dim": base.VISION_HIDDEN * (len(intermediate_layers) + 1),
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": base.TEXT_HIDDEN,
            "intermediate_size": 2 * base.TEXT_HIDDEN,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": base.TEXT_HEADS,
            "num_key_value_heads": base.TEXT_KV_HEADS,
            "max_position_embeddings": 1024,
            "cross_attention_layers": [1],
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=base.token_id(tokenizer, "<|image|>"),
    )
    model = MllamaForConditionalGeneration(config)
    # cross-attention gates start at zero (tanh(0) = 0 shuts the image out, and its gradient with it);
    # opening them lets the image reach the text from the first step
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            if hasattr(layer, "cross_attn_attn_gate"):
                layer.cross_attn_attn_gate.fill_(1.0)
                layer.cross_attn_mlp_gate.fill_(1.0)
    base.configure_generation(model, tokenizer, STOP_TOKENS)
    return base.TinyBuild(model=model, processor=processor)
