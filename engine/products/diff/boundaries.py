"""The patients the behavioural diff evaluates: both versions' clinical cases, then patients at and
next to every numeric threshold on an input fact (in the fact's canonical unit)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.model.content import Content, atoms
from engine.model.vocabulary import COMPARISONS
from engine.products.cases import Case

# Clinical cases used as the base of boundary patients, per probed fact. All of them would make
# ~10,000 evaluations for the bundled guideline; 20, spread over the case files, keep the whole
# behavioural diff near 2 s while still varying the rest of the patient.
BASES_PER_FACT = 20
_MAX_DECIMALS = 6


@dataclass(frozen=True)
class Patient:
    name: str
    facts: Mapping[str, Any] = field(hash=False)


def _facts_key(facts: Mapping[str, Any]) -> str:
    return json.dumps(facts, sort_keys=True, default=str)


def _decimals(value: float) -> int:
    """Decimals a threshold is written with; 60 and 60.0 both have none (YAML may give either)."""
    if float(value).is_integer():
        return 0
    exponent = Decimal(repr(float(value))).as_tuple().exponent
    return min(-exponent, _MAX_DECIMALS) if isinstance(exponent, int) and exponent < 0 else 0


def thresholds(content: Content) -> tuple[dict[str, set[float]], set[str]]:
    """(input fact -> canonical thresholds, derived-only facts with thresholds)."""
    conds = [r.when for r in content.rules]
    conds += [s.applies_when for s in content.scores]
    conds += [opt.when for s in content.scores for item in s.items for opt in item.options]
    found: dict[str, set[float]] = {}
    derived_only: set[str] = set()
    for a in (a for c in conds for a in atoms(c)):
        if a.op not in COMPARISONS:
            continue
        # A patient can be given the input of that name, whichever fact the atom reads: giving
        # `anc` reaches the thresholds on the derived `anc` too. The value is already canonical.
        if a.fact in content.facts:
            found.setdefault(a.fact, set()).add(float(a.value))
        else:
            derived_only.add(a.fact)
    return found, derived_only


def boundary_values(values: Iterable[float]) -> list[tuple[str, float]]:
    """Each threshold and one step either side; the step is one decimal finer than the finest threshold."""
    values = sorted(set(values))
    decimals = max((_decimals(v) for v in values), default=0) + 1
    step = Decimal(1).scaleb(-decimals)
    out: dict[str, float] = {}
    for v in values:
        exact = Decimal(repr(float(v)))
        for d in (exact - step, exact, exact + step):
            out.setdefault(f"{d:.{decimals}f}", float(d))
    return sorted(out.items(), key=lambda kv: kv[1])


def _spread(items: list[Case], cap: int) -> list[Case]:
    """At most `cap` items evenly spread over the list (case files cover different topics)."""
    if len(items) <= cap:
        return items
    return [items[round(i * (len(items) - 1) / (cap - 1))] for i in range(cap)] if cap > 1 else items[:1]


def patients(old_cases: list[Case], new_cases: list[Case], probe: dict[str, set[float]],
             bases_per_fact: int) -> tuple[list[Patient], int]:
    """(patients, how many came from cases): the cases of both versions, then boundary patients."""
    seen: dict[str, Patient] = {}
    cases: list[Case] = []
    for tag, group in (("", old_cases), (" (new version's cases)", new_cases)):
        for case in group:
            key = _facts_key(case.facts)
            if key not in seen:
                seen[key] = Patient(f"case '{case.name}'{tag}", case.facts)
                cases.append(case)
    from_cases = len(seen)
    for fact in sorted(probe):
        bases = _spread([c for c in cases if fact in c.facts], bases_per_fact)
        for text, value in boundary_values(probe[fact]):
            for base in [None, *bases]:
                facts = {**(base.facts if base else {}), fact: value}
                key = _facts_key(facts)
                if key not in seen:
                    origin = f"from case '{base.name}'" if base else "alone"
                    seen[key] = Patient(f"boundary {fact}={text} {origin}", facts)
    return list(seen.values()), from_cases
