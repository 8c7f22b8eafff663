"""NDJSON patients, `{"id": "...", "facts": {...}}` per line: read as a stream of bounded lines, each parsed
with the same strict JSON reader as one patient's file (engine/run/json_input.py) and the same words.

The driver only cuts lines (cheap, and bounded: a line past the limit is skipped to its end, never
held); parsing and checking happen on the workers, with the evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from engine.errors import InputFactsError, echo
from engine.run.json_input import MAX_JSON_BYTES, decode, parse

_READ = 1 << 16  # how much of an over-long line is read at a time while it is skipped


@dataclass(frozen=True)
class Line:
    """One non-blank input line: its number and bytes, or why it was not kept."""

    number: int
    data: bytes | None          # None: the line was longer than the limit
    length: int = 0             # bytes of an over-long line


def _readline(stream: BinaryIO | TextIO, limit: int) -> bytes:
    data = stream.readline(limit)
    # A text stream (a test's StringIO): its characters back to the bytes they came from.
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data


def lines(stream: BinaryIO | TextIO, max_bytes: int = MAX_JSON_BYTES) -> Iterator[Line]:
    """Every non-blank line of `stream`, numbered from 1; memory bounded by `max_bytes` per line."""
    number = 0
    while True:
        data = _readline(stream, max_bytes + 1)
        if not data:
            return
        number += 1
        if len(data) > max_bytes and not data.endswith(b"\n"):
            length = len(data)
            while (more := _readline(stream, _READ)) and not more.endswith(b"\n"):
                length += len(more)
            length += len(more)
            yield Line(number, None, length)
            continue
        if number == 1:
            data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as json_input allows
        if data.strip():
            yield Line(number, data)


def patient(line: Line, where: str) -> tuple[str | None, Any, list[str]]:
    """(id, facts, problems) of one line; problems are located at `where` (`line 7`)."""
    if line.data is None:
        return None, None, [f"{where}: the line is {line.length:,} bytes, longer than the {MAX_JSON_BYTES:,} "
                            "bytes one patient may have; not read"]
    try:
        value = parse(decode(line.data, where), where, keep_duplicates=True)
    except InputFactsError as exc:
        return None, None, [line if line.startswith(where) else f"{where}: {line}" for line in exc.lines()]
    if not isinstance(value, dict):
        return None, None, [f"{where}: a patient is a JSON object {{\"id\": ..., \"facts\": {{...}}}}, not "
                            f"{type(value).__name__}"]
    problems = [f"{where}: '{echo(key)}' given twice in the line" for key in getattr(value, "duplicates", ())]
    raw_id = value.get("id")
    patient_id = raw_id if isinstance(raw_id, str) and raw_id else None
    if "id" not in value:
        problems.append(f"{where}: no \"id\"")
    elif patient_id is None:
        problems.append(f"{where}: \"id\" must be a non-empty string, not {echo(repr(raw_id))}")
    extra = sorted(set(value) - {"id", "facts"})
    if extra:
        problems.append(f"{where}: unexpected key(s) {echo(', '.join(map(str, extra)))}; a line is "
                        "{\"id\": ..., \"facts\": {...}}")
    if "facts" not in value:
        problems.append(f"{where}: no \"facts\"")
    return patient_id, value.get("facts"), problems
