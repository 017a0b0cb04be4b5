"""The attribute schema: the single source of truth for what an enriched product looks like.

The instruction prompt, the JSON schema used for constrained decoding, the validator, the training
targets and the database columns are all derived from ``FIELDS`` below, so changing a vocabulary or a
length limit here changes every one of them together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

#: bumped whenever a key, a vocabulary or a length limit changes; stored with every result
SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Field:
    """One attribute the model returns.

    name: the JSON key and the database column.
    kind: ``enum`` (closed vocabulary) or ``text`` (free text, normalized and length-limited).
    max_length: the longest value accepted, in characters.
    source_column: the column of fashion-product-images-small that holds the label.
    choices: the vocabulary of an ``enum`` field, in canonical spelling.
    synonyms: other spellings models use, mapped (lower-cased) to a canonical choice.
    """

    name: str
    kind: Literal["enum", "text"]
    max_length: int
    source_column: str
    choices: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()


GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
SEASONS = ("Summer", "Winter", "Fall", "Spring")
USAGES = ("Casual", "Formal", "Sports", "Ethnic", "Party", "Smart Casual", "Travel", "Home")

FIELDS: tuple[Field, ...] = (
    Field("product_name", "text", 100, "productDisplayName"),
    Field("product_type", "text", 40, "articleType"),
    Field("color", "text", 30, "baseColour"),
    Field(
        "gender",
        "enum",
        6,
        "gender",
        GENDERS,
        synonyms=(
            ("man", "Men"),
            ("male", "Men"),
            ("mens", "Men"),
            ("men's", "Men"),
            ("woman", "Women"),
            ("female", "Women"),
            ("womens", "Women"),
            ("women's", "Women"),
            ("boy", "Boys"),
            ("girl", "Girls"),
            ("unisex adult", "Unisex"),
        ),
    ),
    Field(
        "season",
        "enum",
        6,
        "season",
        SEASONS,
        synonyms=(("autumn", "Fall"), ("summers", "Summer"), ("winters", "Winter")),
    ),
    Field(
        "usage",
        "enum",
        12,
        "usage",
        USAGES,
        synonyms=(
            ("sport", "Sports"),
            ("smartcasual", "Smart Casual"),
            ("smart-casual", "Smart Casual"),
            ("casual wear", "Casual"),
            ("formal wear", "Formal"),
            ("party wear", "Party"),
        ),
    ),
)

#: the keys in the order the model is taught to write them
KEYS: tuple[str, ...] = tuple(field.name for field in FIELDS)
FIELDS_BY_NAME: dict[str, Field] = {field.name: field for field in FIELDS}

#: the seed recipe's instruction, built from the keys so it cannot drift from them
INSTRUCTION = "Reply ONLY with a JSON object with the keys: " + ", ".join(KEYS) + "."

#: characters a free-text value may contain besides letters, digits and single spaces; everything else
#: (quotes, angle brackets, braces, backslashes, control characters) is refused so that a stored value
#: is inert in SQL, HTML and JSON alike
TEXT_PUNCTUATION = "'&/.,()+-:#%’"

#: the same rule as a regular expression, for constrained decoding (ASCII subset of what validation allows)
TEXT_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 '&/.,()+:#%-]*[A-Za-z0-9.)%])?$"


def text_pattern(max_length: int) -> str:
    """``TEXT_PATTERN`` with the length limit built in.

    Grammar engines apply ``pattern`` and ignore ``maxLength`` beside it, so the bound must live in the
    expression itself or a constrained generation can run on inside one string forever.
    """
    return TEXT_PATTERN.replace("]*[", f"]{{0,{max_length - 2}}}[", 1)


def json_schema() -> dict:
    """The JSON schema of one model output, used for constrained decoding."""
    properties: dict[str, dict] = {}
    for field in FIELDS:
        if field.kind == "enum":
            properties[field.name] = {"type": "string", "enum": list(field.choices)}
        else:
            properties[field.name] = {
                "type": "string",
                "minLength": 1,
                "maxLength": field.max_length,
                "pattern": text_pattern(field.max_length),
            }
    return {
        "type": "object",
        "properties": properties,
        "required": list(KEYS),
        "additionalProperties": False,
    }


def target_json(attributes: dict[str, str]) -> str:
    """The exact text the model is trained to produce: compact JSON, keys in schema order."""
    return json.dumps({key: attributes[key] for key in KEYS}, ensure_ascii=False, separators=(",", ":"))


def labels_from_record(record: dict) -> dict[str, str]:
    """The attributes of one fashion-product-images-small record, keyed by schema name."""
    return {field.name: str(record[field.source_column]) for field in FIELDS}


def schema_fingerprint() -> str:
    """A short hash of everything in the schema, part of every model version."""
    payload = json.dumps(
        {"version": SCHEMA_VERSION, "instruction": INSTRUCTION, "schema": json_schema()}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def max_output_chars() -> int:
    """Length of the longest valid output (every text at its limit): the worst case a token budget must cover.

    Under constrained decoding every token adds at least one character, so a budget of this many tokens
    always lets the object close.
    """
    longest = {
        field.name: "x" * field.max_length if field.kind == "text" else max(field.choices, key=len) for field in FIELDS
    }
    return len(target_json(longest))
