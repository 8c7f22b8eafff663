"""`guideline diff OLD NEW --cohort INPUT`: both versions evaluate the same real patients, in parallel
on the same Dask machinery as `guideline cohort`; what changes is counted per code.

Each task evaluates its batch on both versions (each shipped once per worker, its digest checked)
and returns counts and the first few patient ids per change; the driver adds them up in input order,
so the examples are the first patients of the input that change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from engine.cohort import execute
from engine.cohort.bulk import Counts
from engine.cohort.command import Options, check_options, items
from engine.cohort.work import NDJSON, checked, group_row, line_row
from engine.guideline import Guideline, load
from engine.products.diff.results import CodeImpact, CohortImpact

EXAMPLES = 3   # patient ids shown per code and direction


@dataclass
class Tally:
    """The changes in one batch (or, summed, the whole cohort)."""

    patients: int = 0
    changed: int = 0
    invalid: int = 0
    derived_changed: int = 0
    added: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)   # (code, +/-) -> ids

    def merge(self, other: Tally) -> None:
        self.patients += other.patients
        self.changed += other.changed
        self.invalid += other.invalid
        self.derived_changed += other.derived_changed
        self.added.update(other.added)
        self.removed.update(other.removed)
        for key, ids in other.examples.items():
            mine = self.examples.setdefault(key, [])
            mine.extend(ids[:EXAMPLES - len(mine)])

    def note(self, code: str, sign: str, patient: str) -> None:
        ids = self.examples.setdefault((code, sign), [])
        if len(ids) < EXAMPLES:
            ids.append(patient)


def diff_batch(old: Guideline, new: Guideline, digests: tuple[str, str], kind: str, items: list[Any],
               as_of: Any) -> Tally:
    """Evaluate a batch on both versions and count what differs."""
    checked(old, digests[0])
    checked(new, digests[1])
    tally = Tally()
    for item in items:
        # Codes and derived facts are compared, never the missing facts: the rows without them,
        # evaluated on the ruleset without the rules that only record them (about twice as fast).
        rows = [line_row(g, item, missing=False)[0] if kind == NDJSON else group_row(g, item, as_of, missing=False)[0]
                for g in (old, new)]
        tally.patients += 1
        a, b = rows
        if a["status"] != "evaluated" or b["status"] != "evaluated":
            tally.invalid += 1
            continue
        name = str(a["id"])
        gained, lost = set(b["codes"]) - set(a["codes"]), set(a["codes"]) - set(b["codes"])
        derived = a["derived"] != b["derived"]
        if gained or lost or derived:
            tally.changed += 1
            tally.derived_changed += derived
        for code in sorted(gained):
            tally.added[code] += 1
            tally.note(code, "+", name)
        for code in sorted(lost):
            tally.removed[code] += 1
            tally.note(code, "-", name)
    return tally


def impact(old_folder: Path, new_folder: Path, options: Options, stdin: TextIO | BinaryIO) -> CohortImpact:
    """The cohort block of `guideline diff --cohort` (both folders load: compare() has checked them)."""
    kind = check_options(options)
    as_of = options.as_of or datetime.now(UTC).date()
    old, new = load(old_folder), load(new_folder)
    total = Tally()
    with execute.client(options.workers, options.scheduler) as dask_client:
        window = execute.WINDOW_PER_WORKER * max(execute.worker_count(dask_client), 1)
        shipped = [execute.ship(dask_client, old), execute.ship(dask_client, new), (old.digest, new.digest)]
        calls = ((kind, batch, as_of) for batch in execute.batches(items(kind, options, stdin, Counts()),
                                                                   options.batch))
        for part in execute.ordered_map(dask_client, diff_batch, shipped, calls, window):
            total.merge(part)
    codes = sorted(set(total.added) | set(total.removed),
                   key=lambda c: (-(total.added[c] + total.removed[c]), c))
    return CohortImpact(total.patients, total.changed, tuple(
        CodeImpact(c, total.added[c], total.removed[c], tuple(total.examples.get((c, "+"), ())),
                   tuple(total.examples.get((c, "-"), ()))) for c in codes), total.invalid, total.derived_changed)

