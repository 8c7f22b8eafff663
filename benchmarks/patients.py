"""Seeded random patients for a guideline, read from its resolved content (no fact name here).

Each patient gives each input fact with a probability drawn per patient (sparse and complete
records both occur, since three-valued logic matters most where facts are missing). Numbers lie
near the thresholds the guideline's conditions put on them (exactly on, just above, just below)
or anywhere in the fact's range, and are written bare, in the canonical unit or in another unit
the fact accepts. The same seed gives the same patients: identity checks compare runs on them.
Used by benchmarks/ and by tests/ (test_runtime.py); never by the engine.
"""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

from engine.check.conditions import (
    all_conditions,  # every condition of the guideline, scores included
)
from engine.model.content import Content, FactSpec, atoms

_DELTAS = (Fraction(0), Fraction(1, 10), Fraction(-1, 10), Fraction(1, 100), Fraction(-1, 100))


def _thresholds(content: Content) -> dict[str, list[Fraction]]:
    found: dict[str, set[Fraction]] = {}
    for cond, _ in all_conditions(content):
        for atom in atoms(cond):
            if atom.binding is not None and atom.binding.exact is not None and atom.fact in content.facts:
                found.setdefault(atom.fact, set()).add(atom.binding.exact)
    return {name: sorted(values) for name, values in found.items()}


def short_number(value: Fraction) -> int | float | None:
    """`value` as a JSON number of at most 12 significant digits, None when it has none."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    if len(text.replace("-", "").replace(".", "").lstrip("0")) > 12:
        return None
    return int(value) if value.denominator == 1 else float(text)


def _number(rng: random.Random, spec: FactSpec, cuts: list[Fraction]) -> Any:
    lo, hi = (Fraction(str(v)) for v in (spec.range or (0, 1000)))
    if cuts and rng.random() < 0.6:
        value = rng.choice(cuts) + rng.choice(_DELTAS)
    else:
        value = Fraction(rng.randint(int(lo * 100), int(hi * 100)), 100)
    value = min(max(value, lo), hi)
    how = rng.random()
    if spec.units and how < 0.25:
        unit, conversion = rng.choice(spec.units)
        written = short_number(value / conversion.multiply - conversion.add)
        if written is not None:
            return {"value": written, "unit": unit}
    bare = short_number(value)
    assert bare is not None  # a multiple of 1/100 within the range
    return {"value": bare, "unit": spec.unit} if spec.unit and how < 0.4 else bare


def random_patients(content: Content, count: int, seed: int = 12) -> list[dict[str, Any]]:
    """`count` valid patients for `content`, the same ones for the same seed."""
    rng = random.Random(seed)
    cuts = _thresholds(content)
    patients = []
    for _ in range(count):
        density = rng.choice((0.1, 0.3, 0.5, 0.8, 1.0))
        patient: dict[str, Any] = {}
        for name, spec in content.facts.items():
            if rng.random() >= density:
                continue
            if spec.type == "boolean":
                patient[name] = rng.random() < 0.5
            elif spec.type == "enum":
                patient[name] = rng.choice(spec.values)
            elif spec.type == "number":
                patient[name] = _number(rng, spec, cuts.get(name, []))
        patients.append(patient)
    return patients
