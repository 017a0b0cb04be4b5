"""Tiny Kosmos-2: CLIP vision tower resampled into latent queries placed inside a Magneto decoder's text."""

from __future__ import annotations

from transformers import (
    CLIPImageProcessorPil,
    Kosmos2Config,
    Kosmos2ForConditionalGeneration,
    Kosmos2Processor,
)

from vlm.architectures import base
from vlm.tokenizer import TokenizerSpec, build_tokenizer

#: latent queries, each filling one image position in the text
LATENT_QUERIES = 16

#: XLM-RoBERTa's special tokens in their usual order; Kosmos2Processor uses the ids right after
#: ``<unk>`` as image placeholders and adds its own tag and patch-index tokens
TOKENIZER = TokenizerSpec(
    special_tokens=("<s>", "<pad>", "</s>", "<unk>"),
    bos_token="<s>",
    eos_token="</s>",
    pad_token="<pad>",
    unk_token="<unk>",
)

#: generation ends at end of sequence
STOP_TOKENS = ("</s>",)


def build() -> base.TinyBuild:
    """A randomly initialised tiny Kosmos-2 and its processor (call after seeding torch)."""
    tokenizer = build_tokenizer(TOKENIZER)
    side = base.IMAGE_SIZE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    # the processor adds ~1000 grounding tokens to the vocabulary, so size the model after it
    processor = Kosmos2Processor(image_processor=image_processor, tokenizer=tokenizer)
    config = Kosmos2Config(
        text_config={
            "vocab_size": len(tokenizer),
            "embed_dim": base.TEXT_HIDDEN,
            "ffn_dim": 2 * base.TEXT_HIDDEN,
            "layers": base.TEXT_LAYERS,
            "attention_heads": base.TEXT_HEADS,
            "max_position_embeddings": 512,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 2 * base.VISION_HIDDEN,
            "num_hidden_layers": base.VISION_LAYERS,
            "num_attention_heads": base.VISION_HEADS,
            "image_size": side,
            "patch_size": base.PATCH_SIZE,
        },
        latent_query_num=LATENT_QUERIES,
    )
    model = Kosmos2ForConditionalGeneration(config)
    base.configure_generation(model, tokenizer, STOP_TOKENS)
    return base.TinyBuild(model=model, processor=processor)
