"""What would change the advice: each missing fact tried at each of its decision-relevant values.

The value classes are read from the resolved content (the thresholds its conditions put on the
fact, exact and in the canonical unit); each class's outcome is computed by evaluating the patient
with that one value added, on the real engine, through the same evaluation path as any patient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from engine.check.conditions import (
    all_conditions,  # every condition of the guideline, scores included
)
from engine.model.content import Atom, Content, atoms
from engine.run.result import Result, WhatIfEntry, WhatIfScenario

# At most this many scenario evaluations for one what-if request. Each costs one evaluation
# (~2 ms of CPU on the bundled guideline); of the example patients `{}` needs the most, 72 (README,
# "What would change the advice"), so the cap leaves room for a guideline with more facts or more
# thresholds per fact while bounding one request to well under a second. An entry whose scenarios
# it cut says so ("truncated": true); the facts after it get no scenario at all.
MAX_WHAT_IF_EVALUATIONS = 200

_HOLDS: dict[str, Callable[[Fraction, Fraction], bool]] = {
    "lt": lambda x, c: x < c, "le": lambda x, c: x <= c, "gt": lambda x, c: x > c, "ge": lambda x, c: x >= c}


def _thresholds(content: Content, fact: str) -> list[Atom]:
    """The comparisons on `fact`, on the input or on the derived fact of the same name (anc)."""
    return [a for cond, _ in all_conditions(content) for a in atoms(cond)
            if a.fact == fact and a.op in _HOLDS and a.binding is not None and a.binding.exact is not None]


def _step(threshold: Fraction) -> Fraction:
    """A readable distance from a threshold: the largest power of ten at most a fifth of it
    (38 -> 1, 0.5 -> 0.1, 100 -> 10), so representatives read 37, 0.4, 90."""
    if threshold == 0:
        return Fraction(1)
    return Fraction(10) ** math.floor(math.log10(abs(threshold) / 5))


def _inside(lo: Fraction, hi: Fraction, closed: bool) -> Fraction:
    """The roundest number between lo and hi (ends included when `closed`), nearest the middle."""
    middle = (lo + hi) / 2
    for k in range(6, -10, -1):
        s = Fraction(10) ** k
        first = math.ceil(lo / s) if closed else math.floor(lo / s) + 1
        last = math.floor(hi / s) if closed else math.ceil(hi / s) - 1
        if first <= last:
            n = min(max(math.floor(middle / s), first), last)
            if n + 1 <= last and abs((n + 1) * s - middle) < abs(n * s - middle):
                n += 1
            return n * s
    return middle


def _below(c: Fraction, lo: Fraction) -> Fraction:
    s = _step(c)
    rep = (math.ceil(c / s) - 1) * s  # the largest multiple of the step below c
    return rep if rep >= lo else _inside(lo, c, closed=False)


def _above(c: Fraction, hi: Fraction) -> Fraction:
    s = _step(c)
    rep = (math.floor(c / s) + 1) * s
    return rep if rep <= hi else _inside(c, hi, closed=False)


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def value_classes(content: Content, fact: str) -> list[Any]:
    """One representative per decision-relevant value of an input fact: true / false; each enum
    value; for a number, one value inside each interval its thresholds cut (and the threshold
    itself where strictness makes it differ), within the fact's plausible range."""
    spec = content.facts[fact]
    if spec.type == "boolean":
        return [True, False]
    if spec.type == "enum":
        return list(spec.values)
    tests = _thresholds(content, fact)
    if spec.type != "number" or not tests:
        return []  # only whether it is given matters, or it feeds a formula: no threshold to cross
    points = sorted({a.binding.exact for a in tests if a.binding and a.binding.exact is not None})
    lo, hi = (Fraction(spec.range[0]), Fraction(spec.range[1])) if spec.range else \
        (points[0] - max(Fraction(1), abs(points[0])), points[-1] + max(Fraction(1), abs(points[-1])))
    points = [p for p in points if lo <= p <= hi]
    if not points:
        return [_number(_inside(lo, hi, closed=True))]
    reps: list[Fraction] = []
    if lo < points[0]:
        reps.append(_below(points[0], lo))
    for i, point in enumerate(points):
        reps.append(point)
        if i + 1 < len(points):
            reps.append(_inside(point, points[i + 1], closed=False))
    if points[-1] < hi:
        reps.append(_above(points[-1], hi))

    def truth(x: Fraction) -> tuple[bool, ...]:
        return tuple(_HOLDS[a.op](x, a.binding.exact) for a in tests if a.binding and a.binding.exact is not None)

    # A threshold point behaves like one of its neighbours unless strictness differs there
    # (`ge 38.3` beside `gt 38.3`): keep it only when its truth differs from both.
    kept: list[Fraction] = []
    for i, rep in enumerate(reps):
        if rep in points and any(0 <= j < len(reps) and truth(reps[j]) == truth(rep) for j in (i - 1, i + 1)):
            continue
        kept.append(rep)
    return [_number(r) for r in kept]


def what_if(content: Content, result: Result, facts: dict[str, Any],
            evaluate: Callable[[dict[str, Any]], Result]) -> tuple[WhatIfEntry, ...]:
    """One entry per missing fact, in the order of `missing`; `facts` are the patient's canonical facts."""
    before = result.codes
    budget = MAX_WHAT_IF_EVALUATIONS
    entries = []
    for missing in result.missing:
        if missing.fact not in content.facts:
            continue
        values = value_classes(content, missing.fact)
        scenarios = []
        for value in values[:budget]:
            after = evaluate({**facts, missing.fact: value}).codes
            scenarios.append(WhatIfScenario(value, tuple(c for c in after if c not in before),
                                            tuple(c for c in before if c not in after)))
        budget -= len(scenarios)
        entries.append(WhatIfEntry(missing.fact, tuple(scenarios), truncated=len(scenarios) < len(values)))
    return tuple(entries)
