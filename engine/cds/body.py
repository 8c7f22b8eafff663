"""A hook or feedback request's body: read within a size and a time limit, then parsed as bounded JSON."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from engine.cds.requests import RequestError
from engine.cds.strict_json import JsonProblem, load_json


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


def parse_json(body: bytes) -> Any:
    """The body as bounded JSON (engine/cds/strict_json.py); 400 naming the problem otherwise."""
    try:
        return load_json(body)
    except JsonProblem as exc:
        raise RequestError(400, str(exc).replace("not UTF-8 text", "the body is not UTF-8 text")) from None
