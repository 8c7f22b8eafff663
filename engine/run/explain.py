"""Plain-language descriptions of matched conditions, for `because` and the text report."""

from __future__ import annotations

from typing import Any

from engine.compile.kleene import F, States, T, U
from engine.model.content import Atom
from engine.model.vocabulary import NEGATED_SYMBOL, SYMBOL

# How UCUM codes read to people; anything not listed is shown as written.
_UNIT_DISPLAY = {"10*9/L": "×10⁹/L", "Cel": "°C", "mm[Hg]": "mmHg", "a": "years", "d": "days", "h": "h",
                 "wk": "weeks", "g/dL": "g/dL", "%": "%"}


# The rule id recorded when a boolean is false because none of its rules for true holds.
NO_RULE_HOLDS = ""


def reason(rule: str, text: str) -> str:
    """'by RULE: what matched', or, for a default false, that none of its conditions holds."""
    return f"by {rule}: {text}" if rule != NO_RULE_HOLDS else f"as none of its conditions holds: {text}"


def show_unit(unit: str | None) -> str:
    return "" if not unit else " " + _UNIT_DISPLAY.get(unit, unit)


def show(value: Any, unit: str | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # 12 significant digits: '%g' (6) showed 0.49999999999 as 0.5, which reads as "0.5 < 0.5"
        # beside a threshold; 12 keep such values apart without showing a conversion's last bits.
        return f"{value:.12g}{show_unit(unit)}"
    if isinstance(value, int):
        return f"{value}{show_unit(unit)}"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"between {show(value[0])} and {show(value[1], unit)}"
    return str(value)


def describe(atom: Atom, states: States, actual: Any, unit: str | None) -> str:
    """E.g. 'anc 0.3 ×10⁹/L < 0.5', 'fever_sustained_1h is false', 'copd is not given'."""
    name = atom.fact
    if actual is None and U in states:
        return f"{name} is not given"
    if atom.op in ("known", "present"):
        return f"{name} is given ({show(actual, unit)})" if T in states else f"{name} is not given"
    if atom.op in SYMBOL:
        threshold = show(atom.value, atom.unit or unit)
        symbol = SYMBOL[atom.op] if T in states else NEGATED_SYMBOL[atom.op]
        return f"{name} {show(actual, unit)} {symbol} {threshold}"
    if atom.op == "in":
        listed = ", ".join(map(show, atom.value))
        return f"{name} is {show(actual)} ({'one of' if T in states else 'none of'} {listed})"
    if T in states or isinstance(actual, bool):
        return f"{name} is {show(actual)}"
    if states == frozenset(F) or actual is not None:
        return f"{name} is {show(actual)}, not {show(atom.value)}"
    return f"{name} is not known to be {show(atom.value)}"
