"""Guideline content in words: conditions, thresholds and derived values as a reviewer reads them.

Shared by `guideline render` and `guideline diff`. Reads resolved content only: a threshold is
shown in its fact's canonical unit, as the engine compares it, with the editor's own writing
added as "(written 500 /uL)" when that was another unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from engine.model.content import (
    All,
    Any_,
    Atom,
    Binding,
    Condition,
    Formula,
    NoneKnown,
    Not,
    Operand,
)
from engine.model.vocabulary import COMPARISONS, SYMBOL
from engine.run.explain import show_unit

_FORMULA = {"add": "+", "subtract": "−", "multiply": "×", "divide": "÷"}
_TIGHT = {"multiply": 2, "divide": 2, "add": 1, "subtract": 1}  # binding strength, for brackets


def binding(item: Atom | Operand) -> Binding:
    """What the resolve stage bound a fact mention to; products never look a name up again."""
    if item.binding is None:
        raise ValueError(f"'{item.fact}' is not resolved: products read content from engine.pipeline.analyse")
    return item.binding


def unit_words(unit: str | None) -> str:
    """How a UCUM code reads ('10*9/L' -> '×10⁹/L'); '' for none."""
    return show_unit(unit).strip()


def number_words(value: Any) -> str:
    """A number as the author wrote it: 1.0 stays '1.0' (a threshold's precision is meaningful)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else repr(float(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_literal(v) for v in value)
    return number_words(value)


def _with_unit(text: str, unit: str | None) -> str:
    shown = unit_words(unit)
    return f"{text} {shown}" if shown else text


def written_words(tests: Iterable[Atom]) -> str:
    """' (written 500 /uL)' for the thresholds among `tests` written in another unit; '' when none."""
    shown = [_with_unit(number_words(w[0]), w[1]) for a in tests if a.op in COMPARISONS
             and (w := binding(a).written) is not None]
    return f" (written {' and '.join(shown)})" if shown else ""


def as_written(a: Atom) -> str:
    """A comparison as its editor wrote it ('anc < 500 /uL'), for a diff of the writing itself."""
    value, unit = binding(a).written or (a.value, a.unit)
    return _with_unit(f"{a.fact} {SYMBOL[a.op]} {number_words(value)}", unit)


def _atom(a: Atom, written: bool) -> str:
    if a.op in SYMBOL:
        note = written_words((a,)) if written else ""
        return _with_unit(f"{a.fact} {SYMBOL[a.op]} {number_words(a.value)}", a.unit) + note
    if a.op == "in":
        return f"{a.fact} is one of {_literal(a.value)}"
    if a.op == "known":
        return f"{a.fact} is known"
    if a.op == "present":
        return f"{a.fact} is given"
    return f"{a.fact} is {_literal(a.value)}"


def _band(cond: All, written: bool) -> str | None:
    """'0.5 ≤ anc < 1.0 ×10⁹/L' for a lower and an upper bound on one fact, in the same unit."""
    if len(cond.items) != 2 or not all(isinstance(a, Atom) and a.op in COMPARISONS for a in cond.items):
        return None
    low, high = sorted(cond.items, key=lambda a: a.op in ("lt", "le"))  # type: ignore[union-attr]
    assert isinstance(low, Atom) and isinstance(high, Atom)
    if low.fact != high.fact or low.op not in ("gt", "ge") or high.op not in ("lt", "le") or low.unit != high.unit:
        return None
    lower = {"gt": "<", "ge": "≤"}[low.op]
    note = written_words((low, high)) if written else ""
    return _with_unit(f"{number_words(low.value)} {lower} {low.fact} {SYMBOL[high.op]} {number_words(high.value)}",
                      high.unit) + note


def condition_words(cond: Condition, written: bool = True) -> str:
    """A whole condition in one line, e.g. 'febrile is true and (anc < 0.5 ×10⁹/L or ...)'.

    `written=False` leaves out the "(written 500 /uL)" notes (a threshold table groups equal tests).
    """
    if isinstance(cond, Atom):
        return _atom(cond, written)
    if isinstance(cond, Not):
        if isinstance(cond.item, Atom) and cond.item.op == "known":
            return f"{cond.item.fact} is not known"
        return f"not ({condition_words(cond.item, written)})"
    if isinstance(cond, NoneKnown):
        return f"none of ({'; '.join(condition_words(c, written) for c in cond.items)}) is known true"
    if isinstance(cond, All) and (band := _band(cond, written)) is not None:
        return band
    joiner = " and " if isinstance(cond, All) else " or "
    return joiner.join(_grouped(c, written) for c in cond.items)


def _grouped(cond: Condition, written: bool) -> str:
    text = condition_words(cond, written)
    if isinstance(cond, All) and _band(cond, written) is not None:
        return text
    return f"({text})" if isinstance(cond, (All, Any_)) and len(cond.items) > 1 else text


def value_words(value: Any) -> str:
    """A derived value: a literal, a fact, or a formula such as 'wbc × (neutrophils_pct + bands_pct) ÷ 100'."""
    if isinstance(value, Operand):
        return value.fact if value.default is None else f"{value.fact} [{number_words(value.default)} if not given]"
    if isinstance(value, Formula):
        parts = []
        for i, arg in enumerate(value.args):
            text = value_words(arg)
            if isinstance(arg, Formula) and (_TIGHT[arg.op] < _TIGHT[value.op]
                                             or (i > 0 and value.op in ("subtract", "divide")
                                                 and _TIGHT[arg.op] == _TIGHT[value.op])):
                text = f"({text})"
            parts.append(text)
        return f" {_FORMULA[value.op]} ".join(parts)
    return _literal(value)
