"""Bytes to a JSON object, within the limits of SPEC §5.8. Pure functions, no framework.

Everything a hostile body can do to a JSON parser is bounded here, before any event rule runs:
size (checked before parsing), UTF-8, nesting depth (checked by a scan of the raw bytes, never
by waiting for a RecursionError), non-finite numbers (`NaN`, `Infinity`, `1e999`), integer
literals outside signed 64 bits (never handed to `int()`, whose 4,300-digit guard raises
ValueError), and text PostgreSQL cannot store (NUL, lone surrogates). Each problem found in a
parsed document is named by its JSON path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64
MIN_JSON_INTEGER = -(2**63)
MAX_JSON_INTEGER = 2**63 - 1
# A literal longer than this is outside 64 bits whatever its digits; int() is not even tried.
_MAX_INTEGER_LITERAL = 20

# A JSON string (escapes included) or a bracket: the depth scan skips the former.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class UndecodableEvent(Exception):
    """A body that cannot be an event at all: oversized, not JSON, not an object, unknown type,
    or holding a value no event may hold (non-finite number, integer out of range, ...).

    `event_type` is what could be read of the type (or "unknown"), for the event log.
    """

    def __init__(self, reason: str, event_type: str = "unknown") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class _Unrepresentable:
    """Stands in for a number the parser must not produce, so that its field can be named."""

    literal: str
    problem: str


def as_bytes(body: bytes | str) -> bytes:
    """Text bodies (SQS) are encoded; a lone surrogate survives as bytes the decoder rejects."""
    if isinstance(body, bytes):
        return body
    return body.encode("utf-8", "surrogatepass")


def read_json_object(body: bytes, *, what: str = "body") -> dict[str, Any]:
    """Parse `body` (UTF-8 JSON) into an object, or raise UndecodableEvent saying why."""
    if len(body) > MAX_BODY_BYTES:
        raise UndecodableEvent(f"payload larger than {MAX_BODY_BYTES} bytes; not parsed")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableEvent(
            f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    if text.startswith("\ufeff"):
        raise UndecodableEvent(f"{what} starts with a byte order mark; send JSON without one")
    # Fewer opening brackets than the limit cannot nest deeper: skip the scan (the usual case).
    few_brackets = body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH
    if not few_brackets and nesting_depth(body) > MAX_JSON_DEPTH:
        raise UndecodableEvent(f"{what} is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise UndecodableEvent(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UndecodableEvent(f"{what} must be a JSON object, got {_json_type(value)}")
    return value


def nesting_depth(body: bytes) -> int:
    """The deepest bracket nesting of `body`, brackets inside JSON strings not counted."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def is_jsonb_storable(document: Any) -> bool:
    """Whether PostgreSQL JSONB can hold `document`: the C encoder's quick answer.

    It refuses non-finite floats and the stand-ins of refused numbers; what it writes must
    then hold no NUL escape and encode to UTF-8 (no lone surrogate).
    """
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return False
    return "\\u0000" not in text


def unstorable_values(document: Any) -> list[str]:
    """`path: problem` for every value of `document` no event may carry, at most 10."""
    if is_jsonb_storable(document):
        return []
    problems = []
    for path, problem in _unstorable(document, "$"):
        problems.append(f"{path}: {problem}")
        if len(problems) == 10:
            break
    return problems


def _unstorable(value: Any, path: str) -> Iterator[tuple[str, str]]:
    # Recursion is bounded: read_json_object refused anything deeper than MAX_JSON_DEPTH.
    if isinstance(value, _Unrepresentable):
        yield path, f"{value.problem} ({_shortened(value.literal)})"
    elif isinstance(value, str):
        problem = text_problem(value)
        if problem:
            yield path, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key)
            if problem:
                yield f"{path}.{_shortened(repr(key))}", f"key contains {problem}"
            yield from _unstorable(item, f"{path}.{_shortened(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}[{index}]")


def text_problem(text: str) -> str | None:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates ("\\ud800")."""
    if "\x00" in text:
        return "a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate escape (e.g. \\ud800), which cannot be stored"
    return None


def _non_finite_constant(literal: str) -> _Unrepresentable:
    return _Unrepresentable(literal, "non-finite number")


def _bounded_int(literal: str) -> int | _Unrepresentable:
    digits = literal.lstrip("-")
    if len(digits) > _MAX_INTEGER_LITERAL:
        return _Unrepresentable(literal, "integer out of the signed 64-bit range")
    number = int(literal)
    if not MIN_JSON_INTEGER <= number <= MAX_JSON_INTEGER:
        return _Unrepresentable(literal, "integer out of the signed 64-bit range")
    return number


def _finite_float(literal: str) -> float | _Unrepresentable:
    number = float(literal)
    if not math.isfinite(number):
        return _Unrepresentable(literal, "non-finite number")
    return number


# Built once: json.loads with hooks would construct a decoder per call.
_DECODER = json.JSONDecoder(
    parse_constant=_non_finite_constant, parse_int=_bounded_int, parse_float=_finite_float
)


def _shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters)"


def _json_type(value: Any) -> str:
    if isinstance(value, _Unrepresentable):
        return value.problem
    return type(value).__name__
