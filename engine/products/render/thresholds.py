"""The threshold tables: for each numeric fact, every test a rule or score makes on it, in canonical order.

Tests, values and order all come from the resolved content (canonical unit, exact threshold), so
a threshold written `{fact: anc, lt: 500, unit: /uL}` sorts and groups as `anc < 0.5 ×10⁹/L`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    NoneKnown,
    Not,
    Rule,
)
from engine.model.vocabulary import COMPARISONS
from engine.products.render.texts import rule_outcome
from engine.products.words import binding, condition_words, number_words, written_words

_FLIP = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


@dataclass(frozen=True)
class ThresholdRow:
    fact: str
    unit: str | None   # the fact's canonical unit, which every test on it is in
    test: str          # "anc < 0.5 ×10⁹/L", "0.5 ≤ anc < 1.0 ×10⁹/L" (canonical, so equal tests group)
    written: str       # " (written 500 /uL)" when the source wrote this test in another unit, else ""
    source: str        # rule id, or "<score id>: <item id>"
    anchor: str        # in-page anchor of the source
    outcome: str       # what follows when the test holds (with the rest of the condition)
    condition: str     # "when <whole condition>" when the test is only part of it, else ""
    key: tuple[Fraction, int]


def _tests(cond: Condition) -> list[tuple[Atom, ...]]:
    """Every numeric test in a condition: single comparisons and lo/hi bands, negations flipped."""
    if isinstance(cond, Atom):
        return [(cond,)] if cond.op in COMPARISONS else []
    if isinstance(cond, Not):
        # replace() keeps each atom's binding (its fact and exact threshold).
        return [tuple(replace(a, op=_FLIP[a.op]) for a in t) for t in _tests(cond.item)]
    if isinstance(cond, All) and len(cond.items) == 2 and all(
            isinstance(a, Atom) and a.op in COMPARISONS for a in cond.items):
        first, second = cond.items
        assert isinstance(first, Atom) and isinstance(second, Atom)
        if first.fact == second.fact:
            return [(first, second)]
    items = cond.items if isinstance(cond, (All, Any_, NoneKnown)) else ()
    return [t for item in items for t in _tests(item)]


def _exact(atom: Atom) -> Fraction:
    exact = binding(atom).exact
    assert exact is not None  # the resolve stage gives every comparison its exact threshold
    return exact


def _test_words(test: tuple[Atom, ...]) -> str:
    return condition_words(test[0] if len(test) == 1 else All(test), written=False)


def _sort_key(test: tuple[Atom, ...]) -> tuple[Fraction, int]:
    """Bands sort at their upper bound just before '<' of the same value, then '≤', '>', '≥'."""
    if len(test) == 2:
        return (max(_exact(a) for a in test), 0)
    atom = test[0]
    return (_exact(atom), {"lt": 1, "le": 2, "gt": 3, "ge": 4}[atom.op])


def _whole(cond: Condition, test: tuple[Atom, ...]) -> bool:
    return cond == test[0] if len(test) == 1 else cond == All(test)


def _rule_rows(rule: Rule, content: Content) -> list[ThresholdRow]:
    rows = []
    for test in _tests(rule.when):
        condition = "" if _whole(rule.when, test) else f"when {condition_words(rule.when)}"
        rows.append(ThresholdRow(test[0].fact, test[0].unit, _test_words(test), written_words(test), rule.id,
                                 f"rule-{rule.id}", rule_outcome(rule, content), condition, _sort_key(test)))
    return rows


def threshold_rows(content: Content) -> tuple[dict[str, list[ThresholdRow]], list[str]]:
    """(fact -> its rows in increasing order, numeric facts no rule compares); facts in dictionary order."""
    rows: dict[str, list[ThresholdRow]] = {}
    for rule in content.rules:
        for row in _rule_rows(rule, content):
            rows.setdefault(row.fact, []).append(row)
    for score in content.scores:
        applies = condition_words(score.applies_when)
        for item in score.items:
            for option in item.options:
                for test in _tests(option.when):
                    rows.setdefault(test[0].fact, []).append(ThresholdRow(
                        test[0].fact, test[0].unit, _test_words(test), written_words(test), f"{score.id}: {item.id}",
                        f"score-{score.id}", f"{number_words(option.points)} points for “{item.title}”",
                        f"the score applies when {applies}", _sort_key(test)))
    numeric = [n for n, s in {**content.facts, **content.derived}.items() if s.type == "number"]
    ordered = {n: sorted(rows[n], key=lambda r: r.key) for n in numeric if n in rows}
    ordered.update({n: sorted(r, key=lambda r: r.key) for n, r in rows.items() if n not in ordered})
    return ordered, [n for n in numeric if n not in rows]
