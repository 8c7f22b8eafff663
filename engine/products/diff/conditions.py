"""How two versions of a condition differ: canonical keys, aligned atoms, one sentence per change.

Two keys per condition, both with and/or items unordered: the written key (how the editor wrote
each threshold, so a threshold re-written in another unit shows as a re-wording) and the meaning
key (each threshold's exact canonical value from the resolve stage, so it is not a logic change).
"""

from __future__ import annotations

import re
from typing import Any

from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    FactSpec,
    NoneKnown,
    Not,
)
from engine.model.vocabulary import COMPARISONS, SYMBOL
from engine.products.diff.results import MINOR, PATCH
from engine.products.words import as_written, binding, condition_words, number_words
from engine.run.explain import show_unit


def vkey(v: Any) -> Any:
    """A comparable key where 1 and 1.0 are equal but true and 1 are not, and `in` lists are sets."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", float(v))
    if isinstance(v, (list, tuple)):
        return ("l", tuple(sorted((vkey(x) for x in v), key=repr)))
    return ("s", repr(v))


def ckey(cond: Condition, meaning: bool = False) -> Any:
    """Canonical form: as written, or with `meaning` each threshold as its exact canonical value."""
    if isinstance(cond, Atom):
        if cond.op in COMPARISONS:
            bound = binding(cond)
            if meaning:
                return ("atom", cond.fact, cond.op, ("n", bound.exact))
            value, unit = bound.written or (cond.value, cond.unit)
            return ("atom", cond.fact, cond.op, vkey(value), unit or "")
        return ("atom", cond.fact, cond.op, vkey(cond.value), cond.unit or "")
    if isinstance(cond, Not):
        return ("not", ckey(cond.item, meaning))
    kind = {All: "all", Any_: "any", NoneKnown: "none_known"}[type(cond)]
    return (kind, tuple(sorted((ckey(c, meaning) for c in cond.items), key=repr)))


def _sorted(cond: Condition) -> Condition:
    if isinstance(cond, Not):
        return Not(_sorted(cond.item))
    if isinstance(cond, (All, Any_, NoneKnown)):
        return type(cond)(tuple(sorted((_sorted(c) for c in cond.items), key=lambda c: repr(ckey(c)))))
    return cond


def _align(old: Condition, new: Condition) -> list[tuple[Atom, Atom]] | None:
    """Pairs of atoms when both conditions have the same shape and test the same facts; else None."""
    if type(old) is not type(new):
        return None
    if isinstance(old, Atom) and isinstance(new, Atom):
        return [(old, new)] if old.fact == new.fact else None
    if isinstance(old, Not) and isinstance(new, Not):
        return _align(old.item, new.item)
    assert isinstance(old, (All, Any_, NoneKnown)) and isinstance(new, (All, Any_, NoneKnown))
    if len(old.items) != len(new.items):
        return None
    pairs: list[tuple[Atom, Atom]] = []
    for o, n in zip(old.items, new.items):
        sub = _align(o, n)
        if sub is None:
            return None
        pairs += sub
    return pairs


def fact_label(spec: FactSpec | None) -> str:
    """A short name from the description ('Absolute neutrophil count'), '' when none is short enough."""
    if spec is None or not spec.description:
        return ""
    first = re.split(r"[.,;:]", spec.description, maxsplit=1)[0]
    first = re.sub(r"\s*\([^)]*\)", "", first).strip()
    return first if 0 < len(first) <= 60 else ""


class Pair:
    """The two contents being compared, with the words each one needs."""

    def __init__(self, old: Content, new: Content):
        self.old, self.new = old, new

    def label(self, fact: str) -> str:
        # Names the fact in a sentence, whichever fact the atom reads: the input's description
        # names it best ("Absolute neutrophil count"), so inputs are looked at first.
        for content in (self.new, self.old):
            spec = content.facts.get(fact) or content.derived.get(fact)
            if spec is not None:
                return fact_label(spec)
        return ""

    def atom_change(self, o: Atom, n: Atom) -> tuple[str, str]:
        """(sentence, level) for one changed test, e.g. 'anc threshold < 0.5 → < 1.0 ×10⁹/L'."""
        old_words, new_words = condition_words(o), condition_words(n)
        if ckey(o, meaning=True) == ckey(n, meaning=True):
            if o.op in COMPARISONS and n.op in COMPARISONS:
                old_words, new_words = as_written(o), as_written(n)
            return f"{old_words} rewritten as {new_words} (same test in canonical units)", PATCH
        label = self.label(n.fact)
        name = f"{n.fact} ({label})" if label else n.fact
        if o.op == n.op and o.op in COMPARISONS and o.unit == n.unit:
            sym = SYMBOL[o.op]
            return (f"{name} threshold {sym} {number_words(o.value)} → {sym} {number_words(n.value)}"
                    f"{show_unit(n.unit)}"), MINOR
        return f"{name}: {old_words} → {new_words}", MINOR

    def condition_changes(self, o: Condition, n: Condition) -> list[tuple[str, str, str, str]]:
        """(sentence, level, old words, new words) for each change between two conditions."""
        if ckey(o) == ckey(n):
            return []
        pairs = _align(o, n)
        if pairs is None:
            pairs = _align(_sorted(o), _sorted(n))
        if pairs is not None:
            found = [(*self.atom_change(a, b), condition_words(a), condition_words(b))
                     for a, b in pairs if ckey(a) != ckey(b)]
            if found:
                return found
        same = ckey(o, meaning=True) == ckey(n, meaning=True)
        return [("condition rewritten, same meaning" if same else "condition changed", PATCH if same else MINOR,
                 condition_words(o), condition_words(n))]
