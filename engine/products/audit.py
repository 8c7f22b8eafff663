"""Tamper-evident evaluation audit log: one JSON line per evaluation, each hash-chained to the previous.

Line format (canonical JSON: keys sorted, no spaces, UTF-8; `hash` is sha256 of the line's
canonical JSON without `hash`; `prev` is the previous line's `hash`, GENESIS for the first line):

  evaluation: {codes, event, guideline: {digest, id, version}, hash, input, prev, result, seq, time, v}
  repair:     {event, hash, prev, seq, time, torn, truncated_bytes, v}
  cards:      {cards: {uuid: code}, client, evaluation, event, hash, hook, hook_instance, prev, seq, service,
               time, v}   (the CDS Hooks cards shown for the evaluation line whose hash is `evaluation`)
  feedback:   {accepted_suggestions, card, client, event, hash, outcome, outcome_timestamp, override_reason,
               prev, seq, service, time, v}   (what a clinician did with a card, from CDS Hooks feedback)

Appends are one os.write of the complete line on an O_APPEND descriptor under an exclusive
flock, then fsync; the previous hash is read under the same lock, so concurrent writers
(threads or processes) never interleave lines or fork the chain.

A torn tail (bytes after the last newline: a write cut short by a crash or power loss) is
repaired by the next writer under the lock. A tail that is a whole, valid record chained to the
line before it lost only its newline: the newline is added back and nothing is removed. Any
other fragment is truncated and a `repair` line records how many bytes were removed and their
sha256; `verify` names every repair line, because a fragment may also be a completed line cut
short by someone. Truncating a crash fragment is safe because an evaluation returns its result
only after its line is completely written and fsynced. Refusing instead would stop every later
evaluation until someone edited the log by hand, which is worse for both care and audit.
Anything else wrong with the last line (not JSON, wrong hash) is not a crash artefact: the
writer refuses to chain onto it. Whole lines cut off the end leave a valid chain: `verify`
checks the log against a chain head kept elsewhere (`expect_head`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import BadInputError, EngineError
from engine.run.result import Result

VERSION = 1
GENESIS = "sha256:" + "0" * 64
_COMMON = {"v": int, "seq": int, "time": str, "event": str, "prev": str, "hash": str}
FIELDS: dict[str, dict[str, type]] = {
    "evaluation": {**_COMMON, "guideline": dict, "input": str, "codes": list, "result": str},
    "repair": {**_COMMON, "truncated_bytes": int, "torn": str},
    "cards": {**_COMMON, "service": str, "hook": str, "hook_instance": str, "client": str, "evaluation": str,
              "cards": dict},
    "feedback": {**_COMMON, "service": str, "client": str, "card": str, "outcome": str, "outcome_timestamp": str,
                 "override_reason": dict, "accepted_suggestions": list},
}
_RECORDED = ("cards", "feedback")  # events written through `record`; evaluation and repair have their own
_MAX_LINE = 1 << 20  # a line longer than this is not one of ours
_log = logging.getLogger("engine.audit")


class AuditLogError(EngineError):
    """The audit line could not be written: the evaluation is void (no result is returned)."""

    exit_code = 1


def canonical_json(value: Any) -> str:
    """Keys sorted, no whitespace, UTF-8 text, no NaN: what `json.loads` + this gives back unchanged."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_facts(facts: Mapping[str, Any]) -> str:
    """Canonical JSON of canonical (validated, converted, flat) facts; 1.0 and 1 are the same value."""
    return canonical_json({name: int(v) if isinstance(v, float) and v.is_integer() else v
                           for name, v in facts.items()})


def sha256(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _sealed(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "hash": sha256(canonical_json(body))}


@dataclass(frozen=True)
class Repair:
    """A `repair` line: the writer removed `removed_bytes` bytes (sha256 `removed`) of a torn last line."""

    line: int
    removed_bytes: int
    removed: str

    def message(self) -> str:
        return (f"audit-repair: a writer removed a torn last line of {self.removed_bytes} byte(s) ({self.removed}) "
                "here: an interrupted write, or a completed line cut short; the lines before it verify")


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`: valid with `count` lines, or broken at `line` (1-based) because `reason`.

    `repairs` names every `repair` line read (a valid log may have some); `head_line` is the line
    whose hash is the expected head, when one was given and found.
    """

    count: int
    head: str
    line: int | None = None
    code: str = ""
    reason: str = ""
    repairs: tuple[Repair, ...] = ()
    head_line: int | None = None

    @property
    def valid(self) -> bool:
        return self.line is None


class AuditLog:
    """An append-only, hash-chained log file; pass it to `Guideline.evaluate(facts, audit_log=...)`."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def append(self, guideline: Mapping[str, str], facts: Mapping[str, Any], result: Result) -> dict[str, Any]:
        """Write the line for one evaluation (canonical facts, its result); the line as written.

        Raises AuditLogError when the line cannot be written durably.
        """
        return self._append({
            "event": "evaluation",
            "guideline": {k: guideline[k] for k in ("id", "version", "digest")},
            "input": sha256(canonical_facts(facts)),
            "codes": list(result.codes),
            "result": sha256(canonical_json(result.to_dict())),
        })

    def record(self, event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Append a `cards` or `feedback` line (fields as in FIELDS); the line as written.

        Raises ValueError for fields `verify` would refuse, AuditLogError when it cannot be written.
        """
        if event not in _RECORDED:
            raise ValueError(f"record() writes {' or '.join(_RECORDED)} lines, not {event!r}")
        expected = {k: t for k, t in FIELDS[event].items() if k not in _COMMON}
        wrong = sorted(set(fields) ^ set(expected)) + sorted(k for k, t in expected.items()
                                                             if k in fields and not isinstance(fields[k], t))
        if wrong:
            raise ValueError(f"{event} line: missing, unexpected or mistyped field(s) {', '.join(wrong)}")
        return self._append({"event": event, **fields})

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise AuditLogError(f"audit log {self.path}: cannot open: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, even if we die
            if os.fstat(fd).st_size == 0:
                _fsync_dir(self.path.parent)  # a new file's directory entry must be durable too
            prev, seq = self._head(fd)
            return self._write(fd, body, prev, seq + 1)
        except OSError as exc:
            raise AuditLogError(f"audit log {self.path}: write failed: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def _write(self, fd: int, body: dict[str, Any], prev: str, seq: int) -> dict[str, Any]:
        record = _sealed({"v": VERSION, "seq": seq, "time": _now(), **body, "prev": prev})
        data = (canonical_json(record) + "\n").encode("utf-8")
        start = os.fstat(fd).st_size
        written = os.write(fd, data)
        if written != len(data):  # disk full: leave no torn tail behind
            os.ftruncate(fd, start)
            raise AuditLogError(f"audit log {self.path}: short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
        return record

    def _head(self, fd: int) -> tuple[str, int]:
        """(hash, seq) of the last line, after repairing a torn tail; (GENESIS, 0) when empty."""
        size = os.fstat(fd).st_size
        try:
            last, end = _last_line(fd, size)
        except ValueError as exc:
            raise AuditLogError(f"audit log {self.path}: {exc}; not an audit log?") from exc
        if end < size:
            torn = os.pread(fd, size - end, end)
            prev, seq = self._head_before(last)
            record, _, _ = _parse(torn)
            if record is not None and record["prev"] == prev and record["seq"] == seq + 1:
                # A whole record that lost only its newline (cut by a byte, or a crash just before
                # the newline reached the disk): complete it; removing it would lose a record.
                os.write(fd, b"\n")
                os.fsync(fd)
                _log.warning("audit log %s: line %d had no newline; completed it", self.path, record["seq"])
                return record["hash"], record["seq"]
            os.ftruncate(fd, end)
            repair = self._write(fd, {"event": "repair", "truncated_bytes": len(torn), "torn": sha256(torn)},
                                 prev, seq + 1)
            _log.warning("audit log %s: removed a torn last line (%d bytes, %s) left by an interrupted "
                         "write; recorded as line %d", self.path, len(torn), repair["torn"], repair["seq"])
            return repair["hash"], repair["seq"]
        return self._head_before(last)

    def _head_before(self, last: bytes | None) -> tuple[str, int]:
        """(hash, seq) of the last complete line; AuditLogError if it is not a valid record."""
        if last is None:
            return GENESIS, 0
        record, code, reason = _parse(last)
        if record is None:
            raise AuditLogError(f"audit log {self.path}: the last line is not a valid record ({code}: {reason}); "
                                "refusing to chain onto it — run `guideline audit verify`")
        return record["hash"], record["seq"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line(fd: int, size: int) -> tuple[bytes | None, int]:
    """(the last complete line without its newline, offset just after it); (None, 0) if none."""
    pos, buf = size, b""
    while pos > 0 and size - pos <= _MAX_LINE * 2:
        chunk = min(8192, pos)
        pos -= chunk
        buf = os.pread(fd, chunk, pos) + buf
        nl = buf.rfind(b"\n")
        if nl < 0:
            continue
        before = buf.rfind(b"\n", 0, nl)
        if before >= 0 or pos == 0:
            return buf[before + 1:nl], pos + nl + 1
    if pos == 0:
        return None, 0
    raise ValueError("the last line is longer than any record")


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str, str]:
    """(record, "", "") for a well-formed line whose own hash is right, else (None, code, reason)."""
    try:
        text = raw.decode("utf-8")
        record = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, "audit-json", f"not a JSON line: {exc}"
    if not isinstance(record, dict):
        return None, "audit-json", "not a JSON object"
    fields = FIELDS.get(record.get("event"))  # type: ignore[arg-type]
    if fields is None:
        return None, "audit-fields", f"unknown event {record.get('event')!r}"
    missing = sorted(set(fields) - set(record))
    extra = sorted(set(record) - set(fields))
    if missing or extra:
        return None, "audit-fields", ", ".join(
            ([f"missing field(s) {', '.join(missing)}"] if missing else [])
            + ([f"unexpected field(s) {', '.join(extra)}"] if extra else []))
    wrong = [k for k, t in fields.items() if not isinstance(record[k], t) or (t is int and isinstance(record[k], bool))]
    if wrong:
        return None, "audit-fields", f"wrong type of field(s) {', '.join(wrong)}"
    if canonical_json(record) != text:
        return None, "audit-canonical", "not in canonical form (the line was edited)"
    body = {k: v for k, v in record.items() if k != "hash"}
    if sha256(canonical_json(body)) != record["hash"]:
        return None, "audit-hash", "its hash does not match its content (the line was altered)"
    return record, "", ""


_HEAD = re.compile(r"(sha256:)?([0-9a-f]{64})")


def expected_head(text: str) -> str:
    """A chain head as `verify` prints it (`sha256:` + 64 hex digits; the prefix may be left out)."""
    match = _HEAD.fullmatch(text.strip().lower())
    if match is None:
        raise BadInputError(f"--expect-head {text[:80]!r} is not a chain head (sha256: followed by 64 hex digits)")
    return "sha256:" + match[2]


def verify(path: str | os.PathLike[str], expect_head: str | None = None) -> Verification:
    """Check every line (JSON, fields, own hash, chain link, sequence); the first broken one.

    With `expect_head` (a chain head kept elsewhere), the log is valid only if one of its lines has
    that hash: lines cut off the end leave a valid chain, but not that line. Raises BadInputError
    (naming the file) when it cannot be read. Lines appended while verifying are not read.
    """
    wanted = expected_head(expect_head) if expect_head is not None else None
    try:  # O_NONBLOCK: opening a FIFO would wait for a writer
        f = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
    except OSError as exc:
        raise BadInputError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from exc
    with f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a device reads as an empty, "valid" log
            raise BadInputError(f"{os.fspath(path)}: not a regular file")
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # a consistent end: no write is half done
        size = os.fstat(f.fileno()).st_size
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        prev, number, offset = GENESIS, 0, 0
        repairs: list[Repair] = []
        head_line = 0 if wanted == GENESIS else None
        while offset < size:
            raw = f.readline(min(size - offset, _MAX_LINE + 1))
            number += 1
            offset += len(raw)
            if not raw.endswith(b"\n"):
                broken = (number - 1, prev, number)
                if len(raw) > _MAX_LINE:
                    return Verification(*broken, "audit-too-long", f"a line of more than {_MAX_LINE} bytes "
                                        "(1 MiB) is longer than any record: not written by this log's writer",
                                        tuple(repairs))
                return Verification(*broken, "audit-torn", "incomplete line, no newline: a torn write (the next "
                                    "append repairs it)", tuple(repairs))
            record, code, reason = _parse(raw[:-1])
            if record is None:
                return Verification(number - 1, prev, number, code, reason, tuple(repairs))
            if record["prev"] != prev:
                return Verification(number - 1, prev, number, "audit-chain",
                                    "does not chain to the line before it (a line was deleted, inserted "
                                    "or moved here)" if number > 1 else "the first line does not start "
                                    "the chain (lines were deleted before it)", tuple(repairs))
            if record["seq"] != number:
                return Verification(number - 1, prev, number, "audit-seq",
                                    f"sequence number {record['seq']}, expected {number}", tuple(repairs))
            if record["event"] == "repair":
                repairs.append(Repair(number, record["truncated_bytes"], record["torn"]))
            prev = record["hash"]
            if prev == wanted:
                head_line = number
        if wanted is not None and head_line is None:
            return Verification(number, prev, number + 1, "audit-head",
                                f"no line has the expected chain head {wanted}: lines were cut off the end of "
                                "the log (or it is another log)", tuple(repairs))
        return Verification(number, prev, repairs=tuple(repairs), head_line=head_line)
