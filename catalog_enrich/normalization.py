"""Turning one attribute value from a model into its canonical, storable form.

Enum values are matched loosely and come back in the schema's spelling. Free text is held to a strict
character rule (letters, digits, single spaces and ``schema.TEXT_PUNCTUATION``) so that whatever passes is
inert in SQL, HTML and JSON, valid UTF-8 without NUL, and matches ``schema.TEXT_PATTERN`` when ASCII.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from catalog_enrich.json_extraction import shorten
from catalog_enrich.schema import TEXT_PUNCTUATION, Field

#: the characters besides letters and digits a free-text value may end with, as in ``schema.TEXT_PATTERN``
TEXT_CLOSING = ".)%"

#: every Unicode space (Zs), line and paragraph separator and ASCII layout character; runs of them become
#: one space, so a value never carries a line break into a report or a CSV
_WHITESPACE = re.compile(r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")

#: halves of UTF-16 pairs: a Python str may hold them (``"\ud800"`` in JSON) but UTF-8 cannot
_SURROGATE = re.compile(r"[\ud800-\udfff]")

#: C0 and C1 control characters other than the layout ones folded into spaces above
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")

#: a word for casing purposes: letters and digits, with apostrophes inside ("men's" is one word)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

#: characters that separate enum spellings and are ignored when matching ("smart-casual", "Smart_Casual")
_ENUM_SEPARATORS = re.compile(r"[\s_-]+")


class NormalizationError(ValueError):
    """A value cannot be made canonical; the message names the field and is safe to show."""


def match_choice(value: str, field: Field) -> str:
    """The canonical choice of an ``enum`` field that ``value`` spells, ignoring case and separators."""
    choice = _choice_lookup(field).get(enum_key(value))
    if choice is None:
        allowed = ", ".join(field.choices)
        raise NormalizationError(f"{field.name} {shorten(value)} is not one of: {allowed}")
    return choice


def enum_key(value: str) -> str:
    """The form two spellings of an enum value share: compatibility-normalized, lower-case, no separators."""
    return _ENUM_SEPARATORS.sub("", unicodedata.normalize("NFKC", value).lower())


@functools.cache
def _choice_lookup(field: Field) -> dict[str, str]:
    """Every accepted spelling of a field's choices and synonyms, keyed by ``enum_key``."""
    lookup = {enum_key(synonym): choice for synonym, choice in field.synonyms}
    # choices win over synonyms, so a synonym can never shadow a canonical spelling
    lookup.update({enum_key(choice): choice for choice in field.choices})
    return lookup


def normalize_text(value: str, field: Field) -> str:
    """The canonical form of a free-text value: NFC, single-spaced, canonically cased, checked and bounded."""
    bad = _SURROGATE.search(value)
    if bad:
        raise NormalizationError(f"{field.name} contains a lone surrogate {_codepoint(bad.group())}")
    bad = _CONTROL.search(value)
    if bad:
        what = "a NUL character" if bad.group() == "\0" else f"control character {_codepoint(bad.group())}"
        raise NormalizationError(f"{field.name} contains {what}")
    text = collapse_whitespace(unicodedata.normalize("NFC", value))
    if not text:
        raise NormalizationError(f"{field.name} is empty")
    # casing can, in rare scripts, produce a decomposed pair; recompose before the character rule
    text = unicodedata.normalize("NFC", canonical_case(text))
    _check_characters(text, field)
    if len(text) > field.max_length:
        raise NormalizationError(f"{field.name} is {len(text)} characters long, the limit is {field.max_length}")
    return text


def collapse_whitespace(text: str) -> str:
    """``text`` with leading and trailing whitespace removed and every inner run replaced by one space."""
    return _WHITESPACE.sub(" ", text).strip(" ")


def canonical_case(text: str) -> str:
    """Capitalize words written all in lower or all in upper case; keep mixed case and words with digits.

    "navy blue" -> "Navy Blue", "TSHIRTS" -> "Tshirts", "men's" -> "Men's", "iPhone" and "3HD" unchanged.
    """
    return _WORD.sub(_case_word, text)


def _case_word(match: re.Match[str]) -> str:
    """One word of ``canonical_case``."""
    word = match.group()
    if any(char.isdigit() for char in word) or not (word.islower() or word.isupper()):
        return word
    return _same_length(word[0], word[0].upper()) + "".join(_same_length(c, c.lower()) for c in word[1:])


def _same_length(original: str, mapped: str) -> str:
    """``mapped`` unless case mapping turned one character into several ("ß" -> "SS"), which would
    change the length already checked and can add characters the rule refuses."""
    return mapped if len(mapped) == 1 else original


def is_allowed_character(char: str) -> bool:
    """Whether ``char`` may be in free text: a letter, a decimal digit, a space or listed punctuation."""
    if char == " " or char in TEXT_PUNCTUATION:
        return True
    category = unicodedata.category(char)
    return category[0] == "L" or category == "Nd"


def _check_characters(text: str, field: Field) -> None:
    """Refuse a character outside the rule, and edges ``schema.TEXT_PATTERN`` would refuse."""
    for char in text:
        if not is_allowed_character(char):
            raise NormalizationError(f"{field.name} contains {_codepoint(char)}, which is not allowed")
    if not text[0].isalnum():
        raise NormalizationError(f"{field.name} must start with a letter or digit")
    if not (text[-1].isalnum() or text[-1] in TEXT_CLOSING):
        raise NormalizationError(f"{field.name} must end with a letter, a digit or one of {TEXT_CLOSING}")


def _codepoint(char: str) -> str:
    """A character named by code point and Unicode name ("U+003C LESS-THAN SIGN"), inert wherever shown."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()
