"""Tests of the raw-output validator: a corpus of real-world failure shapes, the helpers, and fuzzing."""

from __future__ import annotations

import json
import random
import re
import string
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from catalog_enrich.json_extraction import MAX_OUTPUT_CHARS, ExtractionError, extract_object, shorten
from catalog_enrich.normalization import (
    NormalizationError,
    canonical_case,
    collapse_whitespace,
    enum_key,
    is_allowed_character,
    match_choice,
    normalize_text,
)
from catalog_enrich.schema import FIELDS, FIELDS_BY_NAME, KEYS, TEXT_PATTERN, target_json
from catalog_enrich.validation import Verdict, validate_output

CORPUS_PATH = Path(__file__).parent / "data" / "malformed_outputs.jsonl"

GOOD = {
    "product_name": "Turtle Check Men Navy Blue Shirt",
    "product_type": "Shirts",
    "color": "Navy Blue",
    "gender": "Men",
    "season": "Fall",
    "usage": "Casual",
}


def load_corpus() -> list[dict]:
    """The corpus cases; ``raw_parts`` ([text, times] pairs) spell outputs too large to store verbatim."""
    cases = []
    for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if "raw_parts" in case:
            case["raw"] = "".join(text * times for text, times in case.pop("raw_parts"))
        cases.append(case)
    return cases


CORPUS = load_corpus()


def assert_storable(attributes: dict[str, str]) -> None:
    """What every accepted output must be: complete, canonical, and inert in PostgreSQL, HTML and JSON."""
    assert list(attributes) == list(KEYS)
    for name, value in attributes.items():
        field = FIELDS_BY_NAME[name]
        value.encode("utf-8")  # raises on a lone surrogate
        assert "\0" not in value
        if field.kind == "enum":
            assert value in field.choices
            continue
        assert 0 < len(value) <= field.max_length
        assert all(is_allowed_character(char) for char in value)
        assert not set(value) & set('"<>{}\\`;=\n\r\t')
        assert collapse_whitespace(value) == value
        if value.isascii():
            assert re.fullmatch(TEXT_PATTERN, value), value


def assert_safe_reason(reason: str | None) -> None:
    """A reason is short and holds nothing a terminal or a log would interpret."""
    assert reason
    assert len(reason) <= 200
    assert reason.isprintable()
    reason.encode("utf-8")


def test_corpus_is_broad() -> None:
    assert len(CORPUS) >= 60
    assert len({case["case"] for case in CORPUS}) == len(CORPUS)
    assert sum(case["ok"] for case in CORPUS) >= 15
    assert sum(not case["ok"] for case in CORPUS) >= 45


@pytest.mark.parametrize("case", CORPUS, ids=[case["case"] for case in CORPUS])
def test_corpus_case(case: dict) -> None:
    verdict = validate_output(case["raw"])
    assert verdict.ok is case["ok"], verdict.reason
    if case["ok"]:
        assert verdict.attributes == case["attributes"]
        assert verdict.reason is None
        assert_storable(verdict.attributes)
    else:
        assert verdict.attributes is None
        assert case["reason_contains"] in verdict.reason
        assert_safe_reason(verdict.reason)


def test_target_json_round_trips() -> None:
    verdict = validate_output(target_json(GOOD))
    assert verdict == Verdict(ok=True, attributes=GOOD)


def test_verdict_to_json() -> None:
    assert validate_output(target_json(GOOD)).to_json() == {"ok": True, "attributes": GOOD}
    assert validate_output("").to_json() == {"ok": False, "reason": "output is empty"}


def test_verdict_is_frozen() -> None:
    verdict = validate_output("")
    with pytest.raises(FrozenInstanceError):
        verdict.ok = True  # type: ignore[misc]


def test_raw_lone_surrogate_in_output_is_refused() -> None:
    raw = json.dumps({**GOOD, "color": "Navy"}).replace("Navy", "Navy\udc80")
    verdict = validate_output(raw)
    assert not verdict.ok
    assert "lone surrogate U+DC80" in verdict.reason


def test_long_hostile_values_are_not_echoed() -> None:
    hostile = "<script>" + "A" * 5000
    verdict = validate_output(json.dumps({**GOOD, "season": hostile}))
    assert not verdict.ok
    assert len(verdict.reason) < 120
    assert "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" not in verdict.reason


@pytest.mark.parametrize(
    "raw",
    ["{" * MAX_OUTPUT_CHARS, '"' * MAX_OUTPUT_CHARS, "\\" * MAX_OUTPUT_CHARS, '{"a":"' + "\\" * 8000],
    ids=["braces", "quotes", "backslashes", "escapes-in-string"],
)
def test_worst_case_inputs_are_linear(raw: str) -> None:
    started = time.perf_counter()
    for _ in range(20):
        assert not validate_output(raw).ok
    assert time.perf_counter() - started < 1.0


def test_runaway_output_is_refused_without_reading_it() -> None:
    started = time.perf_counter()
    verdict = validate_output(" " * 50_000_000)
    assert time.perf_counter() - started < 0.5
    assert "runaway" in verdict.reason


def fuzz_inputs(count: int) -> list[str]:
    """Mutations of a valid output and random strings rich in the characters the parser cares about."""
    rng = random.Random(1234)
    base = target_json(GOOD)
    alphabet = "{}[]\"\\:,' \n\tnN0\x00\ud800\u200b<>é💙" + string.ascii_letters
    inputs = []
    for _ in range(count):
        choice = rng.random()
        if choice < 0.4:
            cut = rng.randrange(len(base) + 1)
            inputs.append(base[:cut] + rng.choice(alphabet) + base[cut + rng.randrange(3) :])
        elif choice < 0.6:
            inputs.append(base[: rng.randrange(len(base) + 1)])
        else:
            inputs.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(60))))
    return inputs


def test_fuzz_never_raises_and_accepts_only_storable_values() -> None:
    for raw in fuzz_inputs(3000):
        verdict = validate_output(raw)
        assert isinstance(verdict, Verdict)
        if verdict.ok:
            assert_storable(verdict.attributes)
        else:
            assert_safe_reason(verdict.reason)


# --- extraction -------------------------------------------------------------------------------------


def test_extract_object_takes_the_first_object() -> None:
    assert extract_object('x {"a": "}"} {"b": 2}') == {"a": "}"}


def test_extract_object_reports_truncation_inside_a_string() -> None:
    with pytest.raises(ExtractionError, match="inside a string"):
        extract_object('{"a": "b')


def test_shorten_bounds_the_length() -> None:
    assert shorten("Navy") == "'Navy'"
    assert len(shorten("x" * 1000)) == 40
    assert shorten("x" * 1000).endswith("...")
    assert shorten("\x1b[31m") == "'\\x1b[31m'"


# --- normalization helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("navy blue", "Navy Blue"),
        ("TSHIRTS", "Tshirts"),
        ("men's", "Men's"),
        ("MEN'S", "Men's"),
        ("men’s", "Men’s"),
        ("iPhone", "iPhone"),
        ("McDonald", "McDonald"),
        ("3HD 501 a4", "3HD 501 a4"),
        ("t-shirt", "T-Shirt"),
        ("black/WHITE", "Black/White"),
        ("crème brûlée", "Crème Brûlée"),
        ("STRASSE", "Strasse"),
        ("straße", "Straße"),
        ("a", "A"),
    ],
)
def test_canonical_case(text: str, expected: str) -> None:
    assert canonical_case(text) == expected
    assert canonical_case(expected) == expected


def test_canonical_case_keeps_the_length_when_case_mapping_would_not() -> None:
    # "ß".upper() is "SS" and "İ".lower() adds a combining dot; neither may change the checked value
    assert canonical_case("ßig") == "ßig"
    assert canonical_case("İSTANBUL") == "İstanbul"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a  b  ", "a b"),
        ("a\t\n\r b", "a b"),
        ("a\u00a0\u2003\u3000b", "a b"),
        ("a\u2028b", "a b"),
        ("", ""),
    ],
)
def test_collapse_whitespace(text: str, expected: str) -> None:
    assert collapse_whitespace(text) == expected


def test_enum_key_ignores_case_and_separators() -> None:
    assert enum_key("Smart Casual") == enum_key("smart_casual") == enum_key(" SMART-casual ") == "smartcasual"
    assert enum_key("Ｍｅｎ") == "men"


@pytest.mark.parametrize("field", [field for field in FIELDS if field.kind == "enum"], ids=lambda f: f.name)
def test_every_choice_and_synonym_matches(field) -> None:
    for choice in field.choices:
        assert match_choice(choice, field) == choice
        assert match_choice(choice.upper(), field) == choice
    for synonym, choice in field.synonyms:
        assert choice in field.choices
        assert match_choice(synonym, field) == choice


def test_match_choice_lists_the_allowed_values() -> None:
    expected = "season 'Monsoon' is not one of: Summer, Winter, Fall, Spring"
    with pytest.raises(NormalizationError, match=re.escape(expected)):
        match_choice("Monsoon", FIELDS_BY_NAME["season"])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "color is empty"),
        ("a\0b", "NUL"),
        ("a\x7fb", "control character U+007F"),
        ("a\ud800", "lone surrogate U+D800"),
        ("a<b", "U+003C LESS-THAN SIGN"),
        ('a"b', "U+0022 QUOTATION MARK"),
        ("a²", "U+00B2 SUPERSCRIPT TWO"),
        ("(a", "must start with"),
        ("a/", "must end with"),
        ("a" * 31, "is 31 characters long, the limit is 30"),
    ],
)
def test_normalize_text_refuses(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError, match=re.escape(reason)):
        normalize_text(value, FIELDS_BY_NAME["color"])


def test_normalize_text_composes_and_trims() -> None:
    assert normalize_text("  cre\u0300me\n brulee ", FIELDS_BY_NAME["color"]) == "Crème Brulee"


@pytest.mark.parametrize("char", list("'&/.,()+-:#%’ aZ09éЖ中"))
def test_allowed_characters(char: str) -> None:
    assert is_allowed_character(char)


@pytest.mark.parametrize("char", [*'"<>{}[]\\`;=!?*@$^|~_\x00\x1b\u200b\u202e💙²', "\ud800"])
def test_refused_characters(char: str) -> None:
    assert not is_allowed_character(char)


# --- agreement with the pattern used for constrained decoding ---------------------------------------


def ascii_corpus() -> list[str]:
    """Hand-picked edge cases plus random short strings over printable ASCII."""
    rng = random.Random(99)
    alphabet = string.ascii_letters[:6] + "09" + string.punctuation + "  \t\n"
    randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))) for _ in range(20_000)]
    picked = [
        "Navy Blue",
        "a",
        "1",
        "a.",
        "a)",
        "a%",
        "(a)",
        "a-",
        "-a",
        "a  b",
        " a ",
        "a'",
        "a'b",
        "100%",
        "#1",
        "a & b",
        "a+b",
        "a:b",
        "1/2",
    ]
    return picked + randoms


def test_text_rule_agrees_with_text_pattern_on_ascii() -> None:
    field = FIELDS_BY_NAME["product_type"]
    for text in ascii_corpus():
        try:
            normalized = normalize_text(text, field)
        except NormalizationError:
            normalized = None
        collapsed = collapse_whitespace(text)
        expected = bool(re.fullmatch(TEXT_PATTERN, collapsed)) and len(collapsed) <= field.max_length
        assert (normalized is not None) == expected, repr(text)
        if normalized is not None:
            assert re.fullmatch(TEXT_PATTERN, normalized), repr(text)
