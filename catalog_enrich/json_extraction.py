"""Finding the JSON object in a raw model output.

Models wrap their answer in code fences, a sentence of prose or an end-of-turn token, and stop mid-object
when they hit the token limit. ``extract_object`` finds the first complete top-level ``{...}`` in one
linear pass, so neither wrapping nor a runaway generation costs more than reading the text once.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: the longest raw output accepted, in characters; a real answer is a few hundred, so anything longer is
#: a generation that never stopped and is refused before any parsing
MAX_OUTPUT_CHARS = 8192

#: the deepest nesting of braces and brackets scanned; a valid answer is a flat object, and the limit keeps
#: the JSON decoder far from Python's recursion limit
MAX_NESTING = 16

#: the characters that change the scanner's state: everything else is skipped by the regex engine
_STRUCTURAL = re.compile(r'[{}\[\]"\\]')


class ExtractionError(ValueError):
    """The raw output holds no usable JSON object; the message says why, in a form safe to show."""


def extract_object(raw: str) -> Any:
    """The first complete top-level JSON value that starts with ``{`` in ``raw``, decoded.

    Raises ExtractionError when the output is empty, too large, truncated, nested too deeply, not valid
    JSON, uses NaN or Infinity, or repeats a key. The value returned is whatever the JSON holds; checking
    it against the schema is the caller's job.
    """
    if len(raw) > MAX_OUTPUT_CHARS:
        raise ExtractionError(
            f"output is {len(raw)} characters, over the {MAX_OUTPUT_CHARS} limit (a runaway generation?)"
        )
    text = raw.lstrip("\ufeff")
    if not text.strip():
        raise ExtractionError("output is empty")
    start = text.find("{")
    if start < 0:
        raise ExtractionError(_describe_non_object(text))
    if text[:start].rstrip().endswith("["):
        raise ExtractionError("top-level JSON value is an array, not an object")
    end = _object_end(text, start)
    return _decode(text[start:end])


def _object_end(text: str, start: int) -> int:
    """The index just past the value opening at ``text[start]``, counting brackets outside strings."""
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _STRUCTURAL.finditer(text, start):
        position = match.start()
        if position < escaped_until:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                escaped_until = position + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            if depth > MAX_NESTING:
                raise ExtractionError(f"JSON is nested more than {MAX_NESTING} levels deep")
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return position + 1
    where = "inside a string" if in_string else "before the object is closed"
    raise ExtractionError(f"JSON is truncated: the output ends {where}")


def _decode(candidate: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and repeated keys, with a short reason on failure."""
    try:
        # strict=False lets a raw tab or newline inside a value through to normalization, which folds it
        # into a space; NUL and other control characters are refused there with a precise reason
        return json.loads(candidate, strict=False, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except ExtractionError:
        raise
    except json.JSONDecodeError as error:
        raise ExtractionError(f"not valid JSON: {error.msg} at character {error.pos}") from None
    except ValueError as error:
        # e.g. an integer literal past Python's digit limit
        raise ExtractionError(f"not valid JSON: {str(error)[:60]}") from None


def _refuse_constant(name: str) -> Any:
    """Reject the non-standard constants NaN, Infinity and -Infinity that ``json`` accepts by default."""
    raise ExtractionError(f"JSON uses the non-standard constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build an object, refusing a key that appears twice (``json`` would silently keep the last)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ExtractionError(f"JSON repeats the key {shorten(key)}")
        result[key] = value
    return result


def _describe_non_object(text: str) -> str:
    """Why an output with no ``{`` at all is refused, naming the JSON type when it is bare JSON."""
    stripped = text.strip()
    if stripped.startswith("["):
        return "top-level JSON value is an array, not an object"
    try:
        value = json.loads(stripped, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return "no JSON object in output"
    return f"top-level JSON value is {json_type(value)}, not an object"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, with its article, for reasons ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shorten(value: str, limit: int = 40) -> str:
    """``repr`` of a value cut to at most ``limit`` characters, so a reason never echoes hostile bulk."""
    text = repr(value[:limit])
    if len(text) <= limit and len(value) <= limit:
        return text
    return text[: limit - 3] + "..."
