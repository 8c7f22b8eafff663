"""Strict, bounded JSON for patient input: size, encoding, depth and numbers checked; a key given
twice is an error, not a silent overwrite; every refusal is a located InputFactsError, never a
traceback."""

from __future__ import annotations

import json
import math
import re
import sys
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO, Self, TextIO

from engine.errors import InputFactsError, InputProblem, echo

# A patient's facts are a few kB and a FHIR Bundle for one patient rarely more than a few MB; a
# larger file is refused before it is read whole (a 48 MB list was once parsed and echoed).
MAX_JSON_BYTES = 8 * 1024 * 1024
# Patient facts nest 2 deep and FHIR resources about 10; Python's own parser gives up (with a
# RecursionError) somewhere near 1,000, and deep values would trouble every later walk.
MAX_DEPTH = 64
# Digits of the largest double (309): a JSON integer with more is a HugeNumber.
_MAX_FLOAT_DIGITS = len(str(int(sys.float_info.max)))

_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
              (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))


class JsonObject(dict[str, Any]):
    """A JSON object as read: `duplicates` names the keys it gave more than once (the last value is
    kept), so the fact check can report them together with every other problem."""

    duplicates: tuple[str, ...] = ()


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads. JSON allows a key twice and keeps the last: for a
    patient that hides a value (an ANC of 0.3 overridden by 2.0), so it is an input error."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputFactsError([InputProblem(key, "given twice in the same JSON object")])
        seen[key] = value
    return seen


def _marking_duplicates(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        twice: set[str] = set()
        for key, _ in pairs:
            (twice if key in seen else seen).add(key)
        obj.duplicates = tuple(sorted(twice))
    return obj


class HugeNumber(float):
    """A JSON number beyond the largest double (a 400-digit integer, 1e400): ±infinity that keeps
    its literal, so the fact check names the fact and quotes the number instead of failing."""

    literal: str

    def __new__(cls, literal: str) -> Self:
        number = super().__new__(cls, "-inf" if literal.startswith("-") else "inf")
        number.literal = literal
        return number

    def __repr__(self) -> str:
        return echo(self.literal, 24)


def _parse_int(literal: str) -> int | float:
    # The length is checked first: int() refuses 4,300+ digits (ValueError), and a 400-digit int
    # made float() and math.isfinite() raise OverflowError later.
    digits = len(literal) - literal.startswith("-")
    if digits > _MAX_FLOAT_DIGITS or (digits == _MAX_FLOAT_DIGITS and abs(int(literal)) > sys.float_info.max):
        return HugeNumber(literal)
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    return HugeNumber(literal) if math.isinf(value) else value  # float('1e400') is inf, silently


def _position(data: bytes, offset: int) -> str:
    """':LINE:COL' of a 0-based byte offset (COL counts bytes)."""
    line, col = data.count(b"\n", 0, offset) + 1, offset - data.rfind(b"\n", 0, offset)
    return f":{line}:{col}"


def decode(data: bytes, where: str) -> str:
    """UTF-8 text of `data` (a UTF-8 byte-order mark is skipped, as RFC 8259 allows); a UTF-16/32 or
    non-UTF-8 file is refused with words a person understands, not a codec's."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise InputFactsError([InputProblem(where, f"the file is {name} text; JSON input must be UTF-8 "
                                                       "(save it as UTF-8)")])
    data = data.removeprefix(_UTF8_BOM)
    if b"\x00" in data[:4]:  # UTF-16 without a byte-order mark: every other byte of '{"' is zero
        raise InputFactsError([InputProblem(where, "the file holds NUL bytes, as UTF-16 or UTF-32 text does; "
                                                   "JSON input must be UTF-8 (save it as UTF-8)")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFactsError([InputProblem(
            where + _position(data, exc.start),
            f"not UTF-8: byte 0x{data[exc.start]:02x} cannot start or continue a UTF-8 character; JSON input "
            "must be UTF-8 (was the file saved as Latin-1 or Windows-1252?)")]) from None


# Everything but the brackets that nest: whole strings (an unterminated one to the end, so the scan
# never restarts inside it and stays linear) and runs of other characters.
_NOT_NESTING = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[^\[\]{}"]++')
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def _too_deep(text: str) -> bool:
    """Whether arrays and objects nest more than MAX_DEPTH deep: found in the text, in linear time,
    before Python's recursive parser (RecursionError) or any later walk of the value meets them."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _NOT_NESTING.sub("", text).encode("ascii")
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def _too_deep_problem(where: str) -> InputProblem:
    return InputProblem(where, f"arrays and objects nest more than {MAX_DEPTH} deep (at most {MAX_DEPTH} levels are read)")


def parse(text: str, where: str, *, keep_duplicates: bool = False) -> Any:
    """The JSON value of `text`. A key given twice raises, or with `keep_duplicates` is recorded in
    `JsonObject.duplicates` for the fact check to report with the rest. NaN / Infinity parse as
    floats so the fact check can name the fact they were given for."""
    duplicates: list[str] = []

    def refusing(pairs: list[tuple[str, Any]]) -> JsonObject:
        obj = _marking_duplicates(pairs)
        duplicates.extend(obj.duplicates)
        return obj

    hook = _marking_duplicates if keep_duplicates else refusing
    if _too_deep(text):
        raise InputFactsError([_too_deep_problem(where)])
    try:
        value = json.loads(text, object_pairs_hook=hook, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise InputFactsError([InputProblem(f"{where}:{exc.lineno}:{exc.colno}", f"malformed JSON: {exc.msg}")]) from None
    if duplicates:
        raise InputFactsError([InputProblem(key, "given twice in the same JSON object") for key in duplicates])
    return value


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB ({n:,} bytes)" if n >= 1024 * 1024 else f"{n:,} bytes"


def read(source: str, stdin: TextIO | BinaryIO, *, keep_duplicates: bool = False,
         max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value of file `source` (`-` = `stdin`), refused before it is read whole when it is
    larger than `max_bytes`."""
    try:
        if source == "-":
            stream: Any = getattr(stdin, "buffer", stdin)
            raw = stream.read(max_bytes + 1)
            # A text stream (a test's StringIO): its characters back to the bytes they came from.
            data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        else:
            with Path(source).open("rb") as file:
                data = file.read(max_bytes + 1)
    except OSError as exc:
        raise InputFactsError([InputProblem(source, f"cannot read: {exc.strerror}")]) from None
    if len(data) > max_bytes:
        raise InputFactsError([InputProblem(source, f"larger than {_size(max_bytes)}, the most JSON input "
                                                    "read; nothing was evaluated")])
    return parse(decode(data, source), source, keep_duplicates=keep_duplicates)
