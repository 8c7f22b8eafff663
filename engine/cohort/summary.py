"""What a cohort run found, counted: per code and urgency, derived-fact distributions, missing facts.

A `Summary` is plain counters, so each worker counts its own batches and the driver adds them up;
what the counting needs from the guideline (each code's urgency, the bins of each derived fact)
is read once from the resolved content into a `Tally`. A numeric derived fact is binned at the
thresholds the guideline's own conditions test it against, so the distribution shows the
clinically meaningful bands (for the bundled guideline, the ANC bands of the neutropenia grades).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.guideline import Guideline
from engine.model.content import Content, atoms
from engine.model.vocabulary import COMPARISONS, urgencies
from engine.run.explain import show, show_unit

UNKNOWN = "unknown"   # a derived fact the patient's data did not determine
SHOWN_VALUES = 12     # values of one derived fact listed in the summary; the rarest are added up as "other"


@dataclass
class Summary:
    patients: int = 0
    evaluated: int = 0
    invalid: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    urgency: Counter[str] = field(default_factory=Counter)        # recommendations made, by urgency
    missing: Counter[str] = field(default_factory=Counter)        # patients for whom the fact was missing
    applicability: Counter[str] = field(default_factory=Counter)
    derived: dict[str, Counter[str]] = field(default_factory=dict)

    def merge(self, other: Summary) -> None:
        self.patients += other.patients
        self.evaluated += other.evaluated
        self.invalid += other.invalid
        for mine, theirs in ((self.codes, other.codes), (self.urgency, other.urgency),
                             (self.missing, other.missing), (self.applicability, other.applicability)):
            mine.update(theirs)
        for fact, counts in other.derived.items():
            self.derived.setdefault(fact, Counter()).update(counts)


def _thresholds(content: Content) -> dict[str, list[float]]:
    """fact -> the canonical numbers the guideline's conditions compare it with, ascending."""
    conditions = [r.when for r in content.rules] + [s.applies_when for s in content.scores]
    conditions += [o.when for s in content.scores for item in s.items for o in item.options]
    found: dict[str, set[float]] = {}
    for atom in (a for c in conditions for a in atoms(c)):
        if atom.op in COMPARISONS and isinstance(atom.value, (int, float)) and not isinstance(atom.value, bool):
            found.setdefault(atom.fact, set()).add(float(atom.value))
    return {fact: sorted(values) for fact, values in found.items()}


def _bands(cuts: list[float], unit: str | None) -> list[str]:
    """'< a', 'a to < b', …, '≥ z' (a value at a threshold counts in the band above it)."""
    if not cuts:
        return ["known"]
    shown = [show(c) for c in cuts]
    middle = [f"{a} to < {b}" for a, b in zip(shown, shown[1:])]
    suffix = show_unit(unit)
    return [f"< {shown[0]}{suffix}", *(m + suffix for m in middle), f"≥ {shown[-1]}{suffix}"]


class Tally:
    """Counts rows into a Summary the same way on every worker (read from one guideline's content)."""

    def __init__(self, guideline: Guideline):
        content = guideline.content
        self.urgency = {code: rec.urgency for code, rec in content.catalogue.items()}
        cuts = _thresholds(content)
        self.cuts: dict[str, list[float]] = {}
        self.labels: dict[str, list[str]] = {}
        for name, spec in content.derived.items():
            if spec.type == "number":
                self.cuts[name] = cuts.get(name, [])
                self.labels[name] = _bands(self.cuts[name], spec.unit)
            elif spec.type == "boolean":
                self.labels[name] = ["true", "false"]
            else:
                self.labels[name] = list(spec.values)
            self.labels[name].append(UNKNOWN)

    def label(self, fact: str, value: Any) -> str:
        if value is None or value == UNKNOWN:
            return UNKNOWN
        if fact in self.cuts and isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.labels[fact][bisect.bisect_right(self.cuts[fact], float(value)) if self.cuts[fact] else 0]
        return show(value) if isinstance(value, bool) else str(show(value) if isinstance(value, list) else value)

    def add(self, summary: Summary, row: dict[str, Any], sign: int = 1) -> None:
        """Count one row (sign -1 takes it back: a row the driver replaced)."""
        summary.patients += sign
        if row["status"] != "evaluated":
            summary.invalid += sign
            return
        summary.evaluated += sign
        for code in row["codes"]:
            summary.codes[code] += sign
            summary.urgency[self.urgency.get(code, UNKNOWN)] += sign
        for fact in set(row["missing"] or ()):  # None: not computed (`--no-missing`)
            summary.missing[fact] += sign
        applicability = row.get("applicability")
        if isinstance(applicability, dict) and "status" in applicability:
            summary.applicability[str(applicability["status"])] += sign
        derived, counts, label = row["derived"], summary.derived, self.label
        for fact in self.labels:  # a fact absent from the result is not determined
            (counts.get(fact) or counts.setdefault(fact, Counter()))[label(fact, derived.get(fact))] += sign
        if not derived.keys() <= self.labels.keys():
            for fact in derived.keys() - self.labels.keys():
                counts.setdefault(fact, Counter())[label(fact, derived[fact])] += sign


def as_json(summary: Summary, tally: Tally, guideline: dict[str, str], seconds: float,
            workers: int, missing: bool = True) -> dict[str, Any]:
    """The contract's summary JSON, with urgency, applicability, distributions and throughput
    (`missing` False: the run did not compute missing facts, and `missing` is null, not {})."""
    def ordered(counts: Counter[str], labels: list[str]) -> dict[str, int]:
        return {label: counts.get(label, 0) for label in labels} | {k: v for k, v in sorted(counts.items())
                                                                   if k not in labels and v}

    def capped(counts: dict[str, int]) -> dict[str, int]:
        """A fact with many values (a score's possible range) keeps its most frequent ones and "other"."""
        if len(counts) <= SHOWN_VALUES:
            return counts
        unknown = counts.pop(UNKNOWN, 0)
        kept = sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:SHOWN_VALUES - 2]
        rest = sum(counts.values()) - sum(n for _, n in kept)
        return dict(kept) | {f"other ({len(counts) - len(kept)} values)": rest, UNKNOWN: unknown}
    return {
        "patients": summary.patients, "evaluated": summary.evaluated, "invalid": summary.invalid,
        # every code of the catalogue, in its order: a code no patient got reads 0, not absent
        "codes": ordered(summary.codes, list(tally.urgency)),
        "missing": dict(sorted(((f, n) for f, n in summary.missing.items() if n), key=lambda t: (-t[1], t[0])))
        if missing else None,
        "guideline": guideline,
        "urgency": ordered(summary.urgency, list(urgencies())),
        "code_urgency": dict(tally.urgency),
        "applicability": dict(sorted((k, v) for k, v in summary.applicability.items() if v)),
        "derived": {fact: capped(ordered(summary.derived.get(fact, Counter()), labels))
                    for fact, labels in tally.labels.items()},
        "seconds": round(seconds, 3),
        "throughput": round(summary.patients / seconds, 1) if seconds > 0 else None,
        "workers": workers,
    }
