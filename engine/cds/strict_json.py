"""Bounded JSON: what a request body, or a FHIR server's answer, may be before any of it is read.

JSON allows what no CDS client or FHIR server sends and what would cost a 500 or a long stall
further in: nesting deeper than any FHIR resource, numbers of hundreds of digits (a float
overflows, int() refuses more than 4,300 digits), NaN and Infinity, a key given twice, a `\\ud800`
escape (a lone surrogate: not Unicode text, so no answer or audit line naming it could be encoded
as UTF-8). Each is refused with a JsonProblem naming the JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from engine.errors import InputFactsError

# The same depth bound as patient JSON (a prefetch Bundle's Observation component value is ~10 deep).
from engine.run.json_input import MAX_DEPTH, no_duplicate_keys

MAX_NUMBER_CHARS = 64   # FHIR decimals carry at most 18 digits; 64 digits still fit a float (< 1.8e308)


class JsonProblem(ValueError):
    """The data is not JSON this service reads; the message says why and where."""


class _Refused:
    """A JSON number or constant kept out of the parsed value; `why` says why, the walk finds its path."""

    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why


def _number(text: str, kind: type[int | float]) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number of {len(text)} characters ({text[:12]}…): at most {MAX_NUMBER_CHARS}")
    value = kind(text)
    if isinstance(value, float) and abs(value) == float("inf"):
        return _Refused(f"the number {text} is out of range")
    return value


def _constant(text: str) -> _Refused:
    return _Refused(f"{text} is not a JSON number")


def _step(key: str | int, path: str) -> str:
    """`[3]` or `.name` (control characters escaped, cut to 64), as the reader's messages name paths."""
    if isinstance(key, int):
        return f"[{key}]"
    shown = json.dumps(key)[1:-1]
    shown = shown if len(shown) <= 64 else shown[:63] + "…"
    return f".{shown}" if path else shown


def _unicode(text: str) -> bool:
    if text.isascii():  # the common case, without an encoding
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape
        return False
    return True


def _check(value: Any) -> None:
    """Depth, refused numbers and non-Unicode text, walked without recursion; the first problem, at its JSON path."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _Refused):
            raise JsonProblem(f"malformed JSON at {path or 'the top level'}: {node.why}")
        if isinstance(node, str) and not _unicode(node):
            raise JsonProblem(f"malformed JSON at {path or 'the top level'}: text that is not valid Unicode "
                               "(a lone surrogate escape such as \\ud800)")
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonProblem(f"malformed JSON at {path}: nested more than {MAX_DEPTH} deep")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in reversed(list(items)):  # reversed: the first problem in document order
                if isinstance(key, str) and not _unicode(key):
                    raise JsonProblem(f"malformed JSON at {path or 'the top level'}: a key that is not "
                                       "valid Unicode (a lone surrogate escape such as \\ud800)")
                stack.append((child, path + _step(key, path), depth + 1))


def load_json(data: bytes) -> Any:
    """The data as JSON (UTF-8, or UTF-16/32 as RFC 4627 allowed, a BOM accepted); JsonProblem otherwise."""
    try:
        text = data.decode(json.detect_encoding(data))
    except UnicodeDecodeError:
        raise JsonProblem("malformed JSON: not UTF-8 text") from None
    try:
        value = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=no_duplicate_keys,
                           parse_int=lambda s: _number(s, int), parse_float=lambda s: _number(s, float),
                           parse_constant=_constant)
    except InputFactsError as exc:
        key = exc.problems[0].where if exc.problems else ""  # the hook stops at the first such key
        raise JsonProblem(f"malformed JSON: a key given twice in the same object: {json.dumps(key)[1:-1][:64]}") from None
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the C decoder stops at the interpreter's recursion limit, cleanly
        raise JsonProblem(f"malformed JSON: nested more than {MAX_DEPTH} deep") from None
    _check(value)
    return value
