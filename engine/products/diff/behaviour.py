"""The behavioural diff: both versions evaluate the same patients; every difference is kept."""

from __future__ import annotations

import math
import time
from typing import Any

from engine.errors import InputFactsError
from engine.guideline import Guideline
from engine.products.cases import Case
from engine.products.diff.boundaries import (
    BASES_PER_FACT,
    boundary_values,
    patients,
    thresholds,
)
from engine.products.diff.results import Behaviour, DerivedChange, PatientChange


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def behaviour_diff(old: Guideline, new: Guideline, old_cases: list[Case], new_cases: list[Case],
                   bases_per_fact: int = BASES_PER_FACT) -> Behaviour:
    """Evaluate the same patients on both versions and keep those whose codes or derived facts differ."""
    start = time.perf_counter()
    old_t, old_derived = thresholds(old.content)
    new_t, new_derived = thresholds(new.content)
    probe = {f: old_t.get(f, set()) | new_t.get(f, set()) for f in set(old_t) | set(new_t)}
    group, from_cases = patients(old_cases, new_cases, probe, bases_per_fact)
    changed, skipped = [], 0
    for p in group:
        try:
            a, b = old.evaluate(p.facts), new.evaluate(p.facts)
        except InputFactsError:  # e.g. a fact or unit only one version knows
            skipped += 1
            continue
        added = tuple(sorted(set(b.codes) - set(a.codes)))
        removed = tuple(sorted(set(a.codes) - set(b.codes)))
        derived = tuple(DerivedChange(k, a.derived.get(k), b.derived.get(k))
                        for k in sorted(set(a.derived) | set(b.derived))
                        if not _same(a.derived.get(k), b.derived.get(k)))
        if added or removed or derived:
            changed.append(PatientChange(p.name, dict(p.facts), added, removed, derived))
    probed = tuple((f, tuple(t for t, _ in boundary_values(v))) for f, v in sorted(probe.items()))
    return Behaviour(len(group) - skipped, from_cases, len(group) - from_cases, skipped, tuple(changed),
                     time.perf_counter() - start, probed, tuple(sorted((old_derived | new_derived) - set(probe))))
