"""Exact search for patients over the z3 encoding, and witnesses a person can read.

A query is a z3 formula over the encoding (engine/products/check/encode.py); the answer is
None (no patient at all: a proof) or a witness: the input facts of one such patient, with as
few facts given as the solver's unsat cores find and numbers rounded where the answer allows.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import z3

from engine.errors import RuleEngineError
from engine.products.check.encode import Encoding, Formula_, InputVar, real

# A per-query bound, so a pathological guideline cannot hang `check`; the bundled guideline's
# queries take milliseconds.
TIMEOUT_MS = 60_000


class CheckUndecidedError(RuleEngineError):
    """The solver could not decide a query (nonlinear arithmetic or the time bound)."""


class Searcher:
    """Answers "is there a patient for whom ...?" over one encoded guideline."""

    def __init__(self, encoding: Encoding, cuts: dict[str, list[Fraction]] | None = None):
        self.enc = encoding
        self.cuts = cuts or {}  # per input number: the thresholds that cut its range
        self.solver = z3.Solver()
        self.solver.set("timeout", TIMEOUT_MS)
        self.solver.add(*encoding.constraints)
        self.queries = 0

    def _check(self, *assumptions: Formula_) -> Any:
        self.queries += 1
        answer = self.solver.check(*assumptions)
        if answer == z3.unknown:
            raise CheckUndecidedError(f"the solver could not decide a query ({self.solver.reason_unknown()})")
        return answer

    def possible(self, goal: Formula_) -> bool:
        """Whether some patient satisfies `goal` (no witness built)."""
        self.solver.push()
        try:
            self.solver.add(goal)
            return bool(self._check() == z3.sat)
        finally:
            self.solver.pop()

    def witness(self, goal: Formula_) -> dict[str, Any] | None:
        """One patient satisfying `goal`, as input facts in canonical units; None if there is none."""
        self.solver.push()
        try:
            self.solver.add(goal)
            if self._check() != z3.sat:
                return None
            self._fewest_facts()
            self._round_numbers()
            return self._facts(self.solver.model())
        finally:
            self.solver.pop()

    def _fewest_facts(self) -> None:
        """Leave as many facts absent as possible: assume every fact absent, and give back one
        fact of each unsat core (by name, so the witness is stable) until the rest can stay absent."""
        absent = {name: z3.Not(var.known) for name, var in sorted(self.enc.inputs.items())}
        while absent:
            if self._check(*absent.values()) == z3.sat:
                break
            core = {str(c) for c in self.solver.unsat_core()}
            given = next(name for name, lit in absent.items() if str(lit) in core)
            del absent[given]
        # A core may give back more than needed: try each given fact absent once more.
        for name in sorted(set(self.enc.inputs) - set(absent)):
            lit = z3.Not(self.enc.inputs[name].known)
            if self._check(*absent.values(), lit) == z3.sat:
                absent[name] = lit
        self.solver.add(*absent.values())
        self._check()

    def _round_numbers(self) -> None:
        """Replace each number by the roundest value the goal still allows (1.0 before 0.73)."""
        for name, var in sorted(self.enc.inputs.items()):
            model = self.solver.model()
            if var.value is None or var.choices or not z3.is_true(model.eval(var.known, model_completion=True)) \
                    or z3.is_bool(var.value):
                continue
            exact = _number(model.eval(var.value, model_completion=True))
            for candidate in _pleasant(exact, self.cuts.get(name, [])) + _round_candidates(exact):
                if self._check(var.value == real(candidate)) == z3.sat:
                    self.solver.add(var.value == real(candidate))
                    break
            # else: no round value fits (a root of a nonlinear constraint): the model's own stays
            self._check()

    def _facts(self, model: z3.ModelRef) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for name, var in sorted(self.enc.inputs.items()):
            if z3.is_true(model.eval(var.known, model_completion=True)):
                facts[name] = _value(var, model)
        return facts


def _value(var: InputVar, model: z3.ModelRef) -> Any:
    if var.choices:
        return next(v for v, flag in var.choices.items() if z3.is_true(model.eval(flag, model_completion=True)))
    value = model.eval(var.value, model_completion=True)
    if z3.is_bool(value):
        return z3.is_true(value)
    number = _number(value)
    return int(number) if number.denominator == 1 else float(number)


def _number(value: Any) -> Fraction:
    if z3.is_rational_value(value):
        return Fraction(value.numerator_as_long(), value.denominator_as_long())
    if z3.is_algebraic_value(value):  # an irrational root of a nonlinear constraint
        return Fraction(value.approx(12).as_decimal(12).rstrip("?"))
    return Fraction(str(value))


_STEPS = tuple(Fraction(s) for s in ("10", "5", "1", "1/2", "1/10", "1/20", "1/100", "1/1000"))


def _pleasant(value: Fraction, cuts: list[Fraction]) -> list[Fraction]:
    """The roundest value strictly inside the segment (between two thresholds) holding `value`,
    nearest to it: a witness reads "ANC 0.3" or "stable 30 h", never a threshold itself."""
    below = max((c for c in cuts if c <= value), default=None)
    above = min((c for c in cuts if c > value), default=None)
    out: list[Fraction] = []
    for step in _STEPS:
        near = [Fraction(math.floor(value / step)) * step + k * step for k in (0, 1, -1, 2)]
        inside = [c for c in near if (below is None or c > below) and (above is None or c < above)]
        out += sorted(inside, key=lambda c: (abs(c - value), c))
    return list(dict.fromkeys(out))[:6]


def _round_candidates(value: Fraction) -> list[Fraction]:
    """Round values near `value`, roundest first: integers, then tenths, hundredths, thousandths."""
    out: list[Fraction] = []
    for digits in range(4):
        scale = 10 ** digits
        for rounded in (math.floor(value * scale), math.ceil(value * scale)):
            candidate = Fraction(rounded, scale)
            if candidate not in out:
                out.append(candidate)
    return out
