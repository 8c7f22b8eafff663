"""What a Dask worker runs: one batch of patients evaluated into NDJSON rows and counted.

A task gets the Guideline the driver shipped (pickled by content and rebuilt on the worker, see
Guideline.__reduce__) and the digest the driver runs; it refuses to evaluate on any other digest,
so every row of a run is the same guideline's, whichever machine computed it.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.cohort import bulk, ndjson
from engine.cohort.rows import evaluate_row, guideline_key, invalid_row
from engine.cohort.summary import Summary, Tally
from engine.errors import InputFactsError, InputProblem, RuleEngineError
from engine.fhir.reader import read_fhir
from engine.guideline import Guideline
from engine.run.json_input import parse

_TALLIES: dict[str, Tally] = {}   # per worker process, by digest: read once from the content


@dataclass(frozen=True)
class BatchOut:
    """A batch's rows (NDJSON text, in input order), each row's id and line, and their counts."""

    rows: list[str]
    ids: list[str | None]
    wheres: list[str]
    summary: Summary


def checked(guideline: Guideline, digest: str) -> Guideline:
    """The guideline, if it is the one the driver runs; RuleEngineError otherwise."""
    _keep_freed_memory()  # every task runs this first; it acts once per process
    if guideline.digest != digest:
        raise RuleEngineError(f"this worker has guideline {guideline.id} {guideline.version} with digest "
                              f"{guideline.digest}, but the run is on {digest}; no row was evaluated on it")
    return guideline


def _keep_freed_memory() -> None:
    """On a worker started with Dask's MALLOC_TRIM_THRESHOLD_=65536 (any cluster not started by
    engine/cohort/execute.py), give glibc its trim and mmap thresholds back: with the variable set,
    durable_rules' many small allocations went to mmap and were trimmed at every free, 2-7x slower
    (measured: 3.0 s vs 1.3 s for 300 patients; the trim threshold alone recovered little)."""
    if os.environ.pop("MALLOC_TRIM_THRESHOLD_", None) is None:
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-1, 128 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 * 1024 * 1024)   # M_MMAP_THRESHOLD (glibc's own upper bound)
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def tally(guideline: Guideline) -> Tally:
    if guideline.digest not in _TALLIES:
        _TALLIES[guideline.digest] = Tally(guideline)
    return _TALLIES[guideline.digest]


def encode(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def line_row(guideline: Guideline, line: ndjson.Line, missing: bool = True) -> tuple[dict[str, Any], str]:
    """The row of one NDJSON line, and where it was (`line N`); `missing` as in rows.evaluate_row."""
    where = f"line {line.number}"
    key = guideline_key(guideline)
    patient_id, facts, problems = ndjson.patient(line, where)
    if problems:
        return invalid_row(patient_id, key, problems), where
    return evaluate_row(guideline, key, str(patient_id), facts, where, missing), where


def _relocated(problem: InputProblem, resources: list[tuple[str, str]]) -> str:
    """A reader's problem at `[i] …` (its place in the list) said at the file and line instead."""
    head, _, rest = problem.where.partition("]")
    if head.startswith("[") and head[1:].isdigit() and int(head[1:]) < len(resources):
        return str(InputProblem(resources[int(head[1:])][0] + rest, problem.message))
    return str(problem)


def group_row(guideline: Guideline, group: bulk.Group, as_of: date,
              missing: bool = True) -> tuple[dict[str, Any], str]:
    """The row of one patient of a Bulk Data export: its resources read as `evaluate --fhir` reads a
    Bundle (engine/fhir/reader.py), joined with its extra facts."""
    key = guideline_key(guideline)
    where = group.resources[0][0] if group.resources else group.extras[0][0] if group.extras else group.key
    if group.problems:
        return invalid_row(group.id, key, group.problems), where
    try:
        resources = [parse(text, place) for place, text in group.resources]
        extra = None
        if group.extras:
            place, text = group.extras[0]
            line = parse(text, place, keep_duplicates=True)
            unexpected = sorted(set(line) - {"id", "facts"})
            if unexpected or not isinstance(line.get("facts"), dict):
                raise InputFactsError([InputProblem(place, "an extra-facts line is {\"id\": ..., \"facts\": {...}}")])
            extra = line["facts"]
        read = read_fhir(resources, guideline.content, extra=extra, as_of=as_of)
    except InputFactsError as exc:
        problems = [_relocated(p, group.resources) for p in exc.problems]
        more = exc.lines()[len(exc.problems):]
        return invalid_row(group.id, key, problems + more), where
    row = evaluate_row(guideline, key, str(group.id), read.facts, where, missing)
    if read.notes:  # what the reader skipped (an Observation entered in error, a preliminary one)
        row["notes"] = [*row.get("notes", []), *read.notes]
    return row, where


NDJSON, BULK = "ndjson", "bulk"


def evaluate_batch(guideline: Guideline, digest: str, kind: str, items: list[Any], as_of: date,
                   missing: bool = True) -> BatchOut:
    """Rows for a batch of NDJSON lines (kind NDJSON) or Bulk Data groups (kind BULK, read as of
    `as_of`); `missing` False: without the missing facts (`--no-missing`)."""
    checked(guideline, digest)
    counting = tally(guideline)
    summary = Summary()
    rows, ids, wheres = [], [], []
    for item in items:
        row, where = line_row(guideline, item, missing) if kind == NDJSON else \
            group_row(guideline, item, as_of, missing)
        counting.add(summary, row)
        rows.append(encode(row))
        ids.append(row["id"])
        wheres.append(where)
    return BatchOut(rows, ids, wheres, summary)
