"""A hook or feedback request's body: read within a size and a time limit, parsed as bounded JSON.

JSON allows what no CDS client sends and what would cost a 500 or a long stall further in:
nesting deeper than any FHIR resource, numbers of hundreds of digits (a float overflows, int()
refuses more than 4,300 digits), NaN and Infinity, a key given twice. Each is refused here with a
400 naming the JSON path, before any of it reaches the reader.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from engine.cds.requests import RequestError
from engine.errors import InputFactsError
from engine.run.json_input import no_duplicate_keys

MAX_DEPTH = 64          # a prefetch Bundle's Observation component value is ~10 deep
MAX_NUMBER_CHARS = 64   # FHIR decimals carry at most 18 digits; 64 digits still fit a float (< 1.8e308)


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit`, and (408) if it takes over `timeout` s."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body is {declared} bytes; the limit is {limit}")

    async def chunks() -> bytes:
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the request body exceeds the limit of {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    try:  # a client trickling its body must not hold a worker: the whole body within the deadline
        return await asyncio.wait_for(chunks(), timeout)
    except TimeoutError:
        raise RequestError(408, f"the request body was not received within {timeout:g} s") from None


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


def _check(value: Any) -> None:
    """Depth and refused numbers, walked without recursion; the first problem, at its JSON path."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _Refused):
            raise RequestError(400, f"malformed JSON at {path or 'the top level'}: {node.why}")
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise RequestError(400, f"malformed JSON at {path}: nested more than {MAX_DEPTH} deep")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in reversed(list(items)):  # reversed: the first problem in document order
                stack.append((child, path + _step(key, path), depth + 1))


def parse_json(body: bytes) -> Any:
    """The body as JSON (UTF-8, or UTF-16/32 as RFC 4627 allowed, a BOM accepted); 400 otherwise."""
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None
    try:
        value = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=no_duplicate_keys,
                           parse_int=lambda s: _number(s, int), parse_float=lambda s: _number(s, float),
                           parse_constant=_constant)
    except InputFactsError as exc:
        raise RequestError(400, "malformed JSON", [str(p) for p in exc.problems]) from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the C decoder stops at the interpreter's recursion limit, cleanly
        raise RequestError(400, f"malformed JSON: nested more than {MAX_DEPTH} deep") from None
    _check(value)
    return value
