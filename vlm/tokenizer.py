"""A small byte-level BPE tokenizer trained locally, shaped like each architecture's own tokenizer.

Every tiny model gets the same learned vocabulary (so results are comparable across families) with
that family's special tokens placed first and a simplified copy of its chat template. The training
corpus is built from the attribute schema, so the instruction and the JSON targets take few tokens
and generation stays short.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterator
from dataclasses import dataclass, field

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from catalog_enrich import schema

#: learned vocabulary size, special tokens included; small keeps the embedding and lm_head tiny
VOCAB_SIZE = 1000

#: JSON key fragments (``{"color":"``, ``","season":"``) become one pre-token each, so BPE can learn
#: every key with its quotes as a single token; the rest is the usual GPT-2 split
SPLIT_PATTERN = (
    r""" ?\{"[a-z_]+":"|","[a-z_]+":"|"\}"""
    r"""|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

COLOURS = (
    "Black", "White", "Blue", "Navy Blue", "Red", "Green", "Yellow", "Pink", "Purple", "Grey", "Brown",
    "Orange", "Maroon", "Beige", "Olive", "Teal", "Silver", "Gold", "Cream", "Multi",
)  # fmt: skip
PRODUCT_TYPES = (
    "Tshirts", "Shirts", "Jeans", "Shorts", "Dresses", "Skirts", "Casual Shoes", "Sports Shoes", "Handbags",
    "Backpacks", "Watches", "Caps", "Jackets", "Sweatshirts", "Kurtas", "Sarees", "Trousers", "Heels",
    "Sandals", "Belts", "Sunglasses", "Tops", "Flip Flops", "Wallets", "Socks", "Formal Shoes",
)  # fmt: skip
#: a few name prefixes the catalogue's display names carry (brands, styles)
NAME_PREFIXES = ("", "Solid ", "Printed ", "Striped ", "Classic ", "Sport ", "Basic ", "Urban ")

GENERIC_TEXT = (
    "The quick brown fox jumps over the lazy dog. A picture of a product on a plain background.",
    "What is shown in this image? Describe the item, its colour, its type and who it is for.",
    "Question: what colour is the shirt? Answer: the shirt is blue. This is a photo of a red bag.",
    "You are a helpful assistant. Please answer the question about the image in one short sentence.",
    "Size, price, brand, material, cotton, leather, polyester, denim, wool, silk, rubber, metal.",
    "An image of a pair of shoes, a watch with a leather strap, and a backpack with two pockets.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 12 24 100 2024 and dates like 2025-11-22 or 12:30.",
    "Puma Nike Adidas Reebok Fila Lotto Titan Fastrack Wrangler Lee Levis Baggit Catwalk Turtle Peter England",
    "Check Slim Fit Round Neck Polo Graphic Logo Men's Women's Kids Analog Digital Chronograph Leather Strap",
    "Flats Boots Loafers Sneakers Running Training Track Pants Capris Leggings Tunics Innerwear Briefs Bra",
    "There is a long list of common words: and the of to in is it that for on with as was at by this from.",
)


@dataclass(frozen=True)
class TokenizerSpec:
    """What an architecture's tokenizer looks like around the shared vocabulary.

    special_tokens: control tokens of the family, given the first ids in this order.
    bos_token, eos_token, pad_token, unk_token: the roles, each one of ``special_tokens`` (or None).
    chat_template: jinja template rendering ``messages`` (None where the family has none).
    extra_special_tokens: named extra tokens the processor looks up (``image_token`` -> ``<image>``).
    add_bos_token: prepend ``bos_token`` when encoding with special tokens, as the family does.
    added_tokens: ordinary (non-special) tokens appended after training.
    """

    special_tokens: tuple[str, ...]
    eos_token: str
    pad_token: str
    bos_token: str | None = None
    unk_token: str | None = None
    chat_template: str | None = None
    extra_special_tokens: dict[str, str] = field(default_factory=dict)
    add_bos_token: bool = False
    added_tokens: tuple[str, ...] = ()


def example_targets() -> Iterator[str]:
    """JSON targets over a spread of colours, product types and names, in a fixed order."""
    genders, seasons, usages = (schema.FIELDS_BY_NAME[k].choices for k in ("gender", "season", "usage"))
    rotation = itertools.count()
    for gender, colour, product_type in itertools.product(genders, COLOURS, PRODUCT_TYPES):
        step = next(rotation)
        prefix = NAME_PREFIXES[step % len(NAME_PREFIXES)]
        attributes = {
            "product_name": f"{prefix}{gender} {colour} {product_type}",
            "product_type": product_type,
            "color": colour,
            "gender": gender,
            "season": seasons[step % len(seasons)],
            "usage": usages[step % len(usages)],
        }
        yield schema.target_json(attributes)


def training_corpus() -> list[str]:
    """The deterministic text the vocabulary is learned from."""
    choices = [choice for spec in schema.FIELDS for choice in spec.choices]
    targets = list(example_targets())
    corpus = [schema.INSTRUCTION] * 200
    corpus += targets
    # question/answer prompts put a space before the JSON, which then starts with its own token
    corpus += [f"Question: {schema.INSTRUCTION} Answer: {target}" for target in targets[::4]]
    corpus += [" ".join(choices), " ".join(COLOURS), " ".join(PRODUCT_TYPES)] * 20
    corpus += list(GENERIC_TEXT) * 10
    corpus.append(string.printable)
    return corpus


def _train_backend(special_tokens: tuple[str, ...], vocab_size: int) -> Tokenizer:
    """Train the byte-level BPE model with ``special_tokens`` holding the first ids."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    return backend


def build_tokenizer(spec: TokenizerSpec, *, vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A left-padding fast tokenizer with the family's special tokens and chat template."""
    backend = _train_backend(spec.special_tokens, vocab_size)
    if spec.add_bos_token and spec.bos_token is not None:
        bos_id = backend.token_to_id(spec.bos_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_token} $A", pair=f"{spec.bos_token} $A $B", special_tokens=[(spec.bos_token, bos_id)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        unk_token=spec.unk_token,
        padding_side="left",
        chat_template=spec.chat_template,
        extra_special_tokens=dict(spec.extra_special_tokens),
        clean_up_tokenization_spaces=False,
    )
    if spec.added_tokens:
        tokenizer.add_tokens(list(spec.added_tokens))
    return tokenizer
