"""A FHIR Bulk Data export folder (the `*.ndjson` files an EHR's `$export` writes) grouped by patient,
in bounded memory: an external merge sort on disk by patient reference.

Each resource line is tagged with its patient (`Patient/<id>`: the Patient's own id, an
Observation's subject), sorted in chunks of `chunk_size` lines written to temporary files, and the
chunks are merged; consecutive lines of one patient form its group. Memory holds one chunk while
sorting and one patient while merging, whatever the export's size. Extra facts (`--facts`, an
`{"id", "facts"}` NDJSON file) join the same sort, so they meet their patient without an index.
Groups come out in the order of the patient reference; within a group, in input order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engine.cohort.ndjson import lines
from engine.errors import InputFactsError, echo
from engine.fhir.observations import (
    _subject as subject_of,  # the one spelling of a patient reference
)
from engine.run.json_input import MAX_JSON_BYTES, decode

CHUNK_LINES = 100_000   # lines sorted in memory at a time (~100 MB for typical Observation lines)
PATIENT = "Patient/"
_ORPHAN = "\x00"         # sorts first: lines that belong to no patient, each its own group


@dataclass
class Group:
    """Everything the export says about one patient (or one line that belongs to no patient)."""

    key: str
    resources: list[tuple[str, str]] = field(default_factory=list)   # (file:line, JSON text)
    extras: list[tuple[str, str]] = field(default_factory=list)      # extra-facts lines
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return self.key.removeprefix(PATIENT) if self.key.startswith(PATIENT) else None


@dataclass
class Counts:
    """What the grouping read, for the summary line."""

    lines: int = 0
    ignored: dict[str, int] = field(default_factory=dict)   # resource type -> lines not about a patient's facts


def is_bulk_folder(path: Path) -> bool:
    return path.is_dir()


def export_files(folder: Path) -> list[Path]:
    """The export's NDJSON files, in name order (`Observation.ndjson`, `Observation_2.ndjson`, ...)."""
    return sorted(p for p in folder.iterdir() if p.suffix == ".ndjson" and p.is_file())


# (key, sequence number, kind, where, text); kind: "P" a Patient, "r" another resource, "x" extra facts,
# "!" a line that belongs to no patient (its text is then the problem)
Record = tuple[str, int, str, str, str]


def _tag(kind: str, where: str, data: bytes | None, length: int, seq: int, counts: Counts) -> Record:
    """The record of one line: its patient found from the few fields that say whose it is."""
    def orphan(problem: str) -> Record:
        return (f"{_ORPHAN}{seq:015d}", seq, "!", where, f"{where}: {problem}")

    if data is None:
        return orphan(f"the line is {length:,} bytes, longer than the {MAX_JSON_BYTES:,} bytes one line may have; "
                      "not read")
    try:
        text = decode(data, where).rstrip("\r\n")
        value = json.loads(text)
    except InputFactsError as exc:
        return orphan("; ".join(exc.lines()))
    except ValueError as exc:  # json.JSONDecodeError; the worker's strict parse names duplicates
        return orphan(f"malformed JSON: {getattr(exc, 'msg', exc)}; whose line it is cannot be told")
    if not isinstance(value, dict):
        return orphan(f"a line is a JSON object, not {type(value).__name__}")
    if kind == "x":
        pid = value.get("id")
        if not isinstance(pid, str) or not pid:
            return orphan("extra facts need an \"id\" (a non-empty string) naming the patient")
        return (PATIENT + pid, seq, kind, where, text)
    rtype = value.get("resourceType")
    if rtype == "Patient":
        pid = value.get("id")
        if not isinstance(pid, str) or not pid:
            return orphan("a Patient without an id; its resources cannot be joined to it")
        return (PATIENT + pid, seq, "P", where, text)
    if rtype == "Observation":
        subject = value.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(ref, str) or not ref:
            label = f"Observation/{value['id']}" if isinstance(value.get("id"), str) else "an Observation"
            return orphan(f"{echo(label)} has no subject.reference; whose it is cannot be told")
        return (subject_of(ref, {}), seq, kind, where, text)
    counts.ignored[str(rtype)] = counts.ignored.get(str(rtype), 0) + 1
    return ("", -1, "", "", "")  # not about the facts the guideline reads (Encounter, Condition, ...)


def _records(sources: Iterable[tuple[Path, str]], counts: Counts) -> Iterator[Record]:
    seq = 0
    for path, kind in sources:
        with path.open("rb") as stream:
            for line in lines(stream):
                seq += 1
                counts.lines += 1
                record = _tag(kind, f"{path.name}:{line.number}", line.data, line.length, seq, counts)
                if record[1] >= 0:
                    yield record


def _spill(chunk: list[Record], directory: Path, index: int) -> Path:
    chunk.sort(key=lambda r: (r[0], r[1]))
    path = directory / f"chunk-{index:06d}.tsv"
    with path.open("w", encoding="utf-8") as out:
        # The header is JSON (no raw tab in it); the text follows the first tab as it was.
        out.writelines(f"{json.dumps(r[:4], ensure_ascii=False)}\t{r[4]}\n" for r in chunk)
    return path


def _read_chunk(handle: IO[str]) -> Iterator[Record]:
    for line in handle:
        header, _, text = line.rstrip("\n").partition("\t")
        key, seq, kind, where = json.loads(header)
        yield key, seq, kind, where, text


def sorted_records(sources: Iterable[tuple[Path, str]], directory: Path, chunk_size: int,
                   counts: Counts) -> Iterator[Record]:
    """Every record in (patient, input order): chunks of `chunk_size` sorted and spilled, then merged."""
    chunks: list[Path] = []
    chunk: list[Record] = []
    for record in _records(sources, counts):
        chunk.append(record)
        if len(chunk) >= chunk_size:
            chunks.append(_spill(chunk, directory, len(chunks)))
            chunk = []
    if not chunks:  # it all fits in one chunk: no file needed
        chunk.sort(key=lambda r: (r[0], r[1]))
        yield from chunk
        return
    if chunk:
        chunks.append(_spill(chunk, directory, len(chunks)))
    handles = [path.open(encoding="utf-8") for path in chunks]
    try:
        yield from heapq.merge(*map(_read_chunk, handles), key=lambda r: (r[0], r[1]))
    finally:
        for handle in handles:
            handle.close()


def _group(key: str, records: Iterable[Record]) -> Group:
    group = Group(key)
    kept = list(records)
    for _, _, kind, where, text in kept:
        if kind == "!":
            group.problems.append(text)
        elif kind == "x":
            group.extras.append((where, text))
        else:
            group.resources.append((where, text))
    if key.startswith(_ORPHAN):
        return group
    if len(group.extras) > 1:
        group.problems.append(f"extra facts for {key} are given more than once ("
                              f"{', '.join(w for w, _ in group.extras)}); give one line per patient")
    if not any(kind == "P" for _, _, kind, _, _ in kept):
        what = ", ".join(w for w, _ in (group.resources + group.extras)[:3])
        group.problems.append(f"the export has no Patient resource {key} ({what} name it)")
    return group


def groups(folder: Path, extra: Path | None = None, chunk_size: int = CHUNK_LINES,
           counts: Counts | None = None) -> Iterator[Group]:
    """One group per patient of the export (and one per line that belongs to none), in patient order."""
    counts = counts if counts is not None else Counts()
    files = [path for path in export_files(folder) if extra is None or path.resolve() != extra.resolve()]
    sources = [(path, "r") for path in files] + ([(extra, "x")] if extra is not None else [])
    with tempfile.TemporaryDirectory(prefix="guideline-cohort-") as tmp:
        merged = sorted_records(sources, Path(tmp), chunk_size, counts)
        for key, records in itertools.groupby(merged, key=lambda r: r[0]):
            yield _group(key, records)
