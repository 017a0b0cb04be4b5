"""Tiny BLIP-2: ViT, a Q-Former that distils the image into query tokens, and an OPT decoder."""

from __future__ import annotations

from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessorPil

from vlm.architectures import base
from vlm.tokenizer import TokenizerSpec, build_tokenizer

#: learned queries, each becoming one image token in the decoder's input
QUERY_TOKENS = 16

#: OPT's tokenizer: ``</s>`` is both the sequence start it prepends and the end; no chat template
TOKENIZER = TokenizerSpec(
    special_tokens=("<s>", "<pad>", "</s>", "<unk>"),
    bos_token="</s>",
    eos_token="</s>",
    pad_token="<pad>",
    unk_token="<unk>",
    add_bos_token=True,
)

#: generation ends at end of sequence
STOP_TOKENS = ("</s>",)


def build() -> base.TinyBuild:
    """A randomly initialised tiny BLIP-2 and its processor (call after seeding torch)."""
    tokenizer = build_tokenizer(TOKENIZER)
    image_processor = BlipImageProcessorPil(size={"height": base.IMAGE_SIZE, "width": base.IMAGE_SIZE})
    # the processor adds the ``<image>`` placeholder to the vocabulary, so size the model after it
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=QUERY_TOKENS)
    config = Blip2Config(
        vision_config={
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 2 * base.VISION_HIDDEN,
            "num_hidden_layers": base.VISION_LAYERS,
            "num_attention_heads": base.VISION_HEADS,
            "image_size": base.IMAGE_SIZE,
            "patch_size": base.PATCH_SIZE,
            # the default (1e-10) leaves the vision tower near zero, a quirk of the original release
            "initializer_range": 0.02,
        },
        qformer_config={
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 2 * base.VISION_HIDDEN,
            "num_hidden_layers": 2,
            "num_attention_heads": base.VISION_HEADS,
            "encoder_hidden_size": base.VISION_HIDDEN,
            "max_position_embeddings": 64,
            "vocab_size": 8,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
        text_config={
            "model_type": "opt",
            "vocab_size": len(tokenizer),
            "hidden_size": base.TEXT_HIDDEN,
            "word_embed_proj_dim": base.TEXT_HIDDEN,
            "ffn_dim": 2 * base.TEXT_HIDDEN,
            "num_hidden_layers": base.TEXT_LAYERS,
            "num_attention_heads": base.TEXT_HEADS,
            "max_position_embeddings": 512,
            "dropout": 0.0,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        num_query_tokens=QUERY_TOKENS,
        image_token_index=base.token_id(tokenizer, "<image>"),
    )
    model = Blip2ForConditionalGeneration(config)
    base.configure_generation(model, tokenizer, STOP_TOKENS)
    return base.TinyBuild(model=model, processor=processor)
