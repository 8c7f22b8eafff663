"""An independent three-valued reference evaluator of a guideline folder, for the property tests.

It reads the YAML files itself (PyYAML, no engine module) and evaluates a patient's facts the
way docs/format.md and contract §5/§6 describe, with none of the engine's machinery: no
branch expansion, no durable_rules, no compiled patterns. Written from the documentation, so
that agreement with the engine on generated patients is evidence that both read the same
semantics, not that one copies the other.

Truth values are T, F and U (undetermined). A numeric fact's value is an interval (lo, hi) of
exact Fractions (a point when lo == hi): a score with undetermined items is an interval, and a
comparison is decided only when the whole interval lies on one side of the threshold. Absent
facts are None; a derived fact whose every rule is known false "does not apply" (NA).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

T, F, U = "T", "F", "U"
NA = object()  # a derived fact none of whose rules applies: absent from `derived`, not missing
Interval = tuple[Fraction, Fraction]


def exact(value: Any) -> Fraction:
    """A JSON number as the decimal it was written as (0.1 is one tenth, not the nearest double)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


def k_not(v: str) -> str:
    return {T: F, F: T, U: U}[v]


def k_all(values: list[str]) -> str:
    return F if F in values else (U if U in values else T)


def k_any(values: list[str]) -> str:
    return T if T in values else (U if U in values else F)


@dataclass
class Reference:
    """The parts of a guideline folder the evaluation needs, read straight from its YAML."""

    inputs: dict[str, dict[str, Any]]
    derived: dict[str, dict[str, Any]]
    rules: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    population: dict[str, Any] | None = None  # guideline.yaml `population` (None: everyone)

    @classmethod
    def read(cls, folder: Path) -> Reference:
        facts = yaml.safe_load((folder / "facts.yaml").read_text(encoding="utf-8"))
        rules: list[dict[str, Any]] = []
        for path in sorted((folder / "rules").glob("*.yaml")):
            rules.extend(yaml.safe_load(path.read_text(encoding="utf-8")).get("rules") or [])
        scores_file = folder / "scores.yaml"
        scores = (yaml.safe_load(scores_file.read_text(encoding="utf-8")) or {}).get("scores") or [] \
            if scores_file.exists() else []
        meta = yaml.safe_load((folder / "guideline.yaml").read_text(encoding="utf-8")) or {}
        return cls(facts.get("inputs") or {}, facts.get("derived") or {}, rules, scores, meta.get("population"))

    # --- the facts a patient gives -------------------------------------------------------------

    def canonical(self, name: str, given: Any) -> Any:
        """An input value in canonical units: numbers as exact Fractions (bare = canonical unit)."""
        spec = self.inputs[name]
        if spec["type"] != "number":
            return given
        if isinstance(given, dict):
            unit = given["unit"]
            value = exact(given["value"])
            if unit == spec.get("unit"):
                return value
            conversion = spec["units"][unit]
            return (value + Fraction(str(conversion.get("add", 0)))) * Fraction(str(conversion["multiply"]))
        return exact(given)

    def threshold(self, fact: str, value: Any, unit: str | None) -> Fraction:
        """A threshold written in `unit`, in the fact's canonical unit."""
        spec = self.inputs.get(fact) or self.derived.get(fact) or {}
        number = exact(value)
        if unit is None or unit == spec.get("unit"):
            return number
        conversion = spec["units"][unit]
        return (number + Fraction(str(conversion.get("add", 0)))) * Fraction(str(conversion["multiply"]))

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, given: dict[str, Any]) -> Outcome:
        return _Evaluation(self, {name: self.canonical(name, v) for name, v in given.items()}).outcome()


@dataclass
class Outcome:
    derived: dict[str, Any]   # derived fact -> value (bool, str, Fraction, [lo, hi]); None = undetermined
    codes: set[str]           # recommendation codes that fire


_COMPARE = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
            "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


class _Evaluation:
    def __init__(self, ref: Reference, inputs: dict[str, Any]):
        self.ref = ref
        self.inputs = inputs
        self.memo: dict[str, Any] = {}
        self.by_fact: dict[str, list[dict[str, Any]]] = {}
        for rule in ref.rules:
            if "derive" in rule["then"]:
                self.by_fact.setdefault(rule["then"]["derive"], []).append(rule)
        self.scores = {s["fact"]: s for s in ref.scores}
        self.ranges = {s["range_fact"]: s for s in ref.scores if s.get("range_fact")}

    # A fact's value: None (absent / undetermined), NA, a bool or enum string, or an Interval.
    def value(self, name: str, own_input: bool = False) -> Any:
        if own_input or (name not in self.ref.derived):
            v = self.inputs.get(name)
            return (v, v) if isinstance(v, Fraction) else v
        if name not in self.memo:
            self.memo[name] = None   # guards a cycle (none in a valid guideline)
            self.memo[name] = self._derive(name)
        return self.memo[name]

    def _derive(self, name: str) -> Any:
        if name in self.scores:
            return self._score(self.scores[name])[0]
        if name in self.ranges:
            return self._score(self.ranges[name])[1]
        rules = self.by_fact.get(name, [])
        spec = self.ref.derived[name]
        outcomes = [(rule, self.cond(rule["when"], name)) for rule in rules]
        for rule, truth in outcomes:
            if truth == T:
                return self._operand(rule["then"]["value"], name)
        if any(truth == U for _, truth in outcomes):
            return None
        boolean_true_only = spec["type"] == "boolean" and all(r["then"]["value"] is True for r in rules)
        return (False if boolean_true_only else NA) if rules else None

    def _operand(self, op: Any, deriving: str) -> Any:
        """A rule's value: literal, {fact}, or a formula. None when an operand without default is unknown."""
        if isinstance(op, (bool, str)):
            return op
        if isinstance(op, (int, float)):
            n = exact(op)
            return (n, n)
        if "fact" in op:
            v = self.value(op["fact"], own_input=op["fact"] == deriving)
            if v is None or v is NA:
                return self._operand(op["default"], deriving) if "default" in op else None
            return v
        (kind, (left, right)), = op.items()
        a, b = self._operand(left, deriving), self._operand(right, deriving)
        if a is None or b is None:
            return None
        x, y = a[0], b[0]   # formulas here act on point values
        result = {"add": lambda: x + y, "subtract": lambda: x - y,
                  "multiply": lambda: x * y, "divide": lambda: x / y}[kind]()
        return (result, result)

    def cond(self, c: dict[str, Any], deriving: str | None = None) -> str:
        if "all" in c:
            return k_all([self.cond(p, deriving) for p in c["all"]])
        if "any" in c:
            return k_any([self.cond(p, deriving) for p in c["any"]])
        if "not" in c:
            return k_not(self.cond(c["not"], deriving))
        if "none_known" in c:
            return F if any(self.cond(p, deriving) == T for p in c["none_known"]) else T
        fact = c["fact"]
        v = self.value(fact, own_input=fact == deriving)
        if "known" in c:
            present = v is not None and v is not NA
            return T if present == c["known"] else F
        if v is None or v is NA:
            return U
        if "is" in c:
            return T if v == c["is"] else F
        if "in" in c:
            return T if v in c["in"] else F
        parts = []
        for key, test in _COMPARE.items():
            if key in c:
                t = self.ref.threshold(fact, c[key], c.get("unit"))
                lo, hi = v
                at_lo, at_hi = test(lo, t), test(hi, t)
                # monotone in the value: both ends agree -> decided; otherwise undetermined
                parts.append(T if at_lo and at_hi else F if not at_lo and not at_hi else U)
        return k_all(parts)

    def _score(self, score: dict[str, Any]) -> tuple[Any, Any]:
        """(score value, range value) of a score: NA when it does not apply, None when undetermined."""
        applies = self.cond(score["applies_when"]) if "applies_when" in score else T
        if applies == F:
            return NA, NA
        if applies == U:
            return None, None
        lo = hi = Fraction(0)
        for item in score["items"]:
            options = [(exact(p["points"]), self.cond(p["when"])) for p in item["points"]]
            sure = [pts for pts, truth in options if truth == T]
            possible = sure or [pts for pts, truth in options if truth == U]
            if possible:
                lo, hi = lo + min(possible), hi + max(possible)
        total = (lo, hi)
        return total, [lo, hi]

    def outcome(self) -> Outcome:
        derived: dict[str, Any] = {}
        for name in self.ref.derived:
            v = self.value(name)
            if v is NA:
                continue
            if isinstance(v, tuple):   # an interval: a number only when it is a point
                v = v[0] if v[0] == v[1] else None
            derived[name] = v
        codes = {rule["then"]["recommend"] for rule in self.ref.rules
                 if "recommend" in rule["then"] and self.cond(rule["when"]) == T}
        # Contract section 7: outside the population (its condition known false) nothing is recommended.
        if self.ref.population is not None and self.cond(self.ref.population["when"]) == F:
            codes = set()
        return Outcome(derived, codes)
