"""Where a condition becomes durable_rules patterns: one branch of literals -> fact patterns ->
the JSON tests durable_rules matches.

A branch (engine/compile/kleene.py) is a conjunction of literals over resolved atoms. Literals on
the patient's input share one pattern on the INPUT fact; literals on a derived fact form a
pattern on that fact, testing the fields engine/compile/encoding.py defines (v / lo / hi / u / na).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.compile.encoding import (
    HIGH,
    INPUT,
    LOW,
    NOT_APPLICABLE,
    TYPE,
    UNDETERMINED,
    VALUE,
    Pattern,
)
from engine.compile.kleene import Branch, F, States, T, U
from engine.model.content import Atom

_CMP = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_NEG = {"lt": "$gte", "le": "$gt", "gt": "$lte", "ge": "$lt"}
# On an interval [lo, hi]: "x < c" is true when hi < c and false when lo >= c, and so on.
_TRUE_BOUND = {"lt": HIGH, "le": HIGH, "gt": LOW, "ge": LOW}
_FALSE_BOUND = {"lt": LOW, "le": LOW, "gt": HIGH, "ge": HIGH}


def _eq_any(prop: str, values: tuple[Any, ...]) -> dict[str, Any]:
    tests = [{prop: v} for v in values]
    return tests[0] if len(tests) == 1 else {"$or": tests}


def _input_test(atom: Atom, state: str) -> dict[str, Any]:
    p, threshold = atom.fact, atom.value
    if atom.op in ("known", "present"):
        return {"$ex": {p: 1}} if state == T else {"$nex": {p: 1}}
    if state == U:
        return {"$nex": {p: 1}}
    if atom.op in _CMP:
        return {(_CMP if state == T else _NEG)[atom.op]: {p: threshold}}
    values = atom.value if atom.op == "in" else (atom.value,)
    if state == T:
        return _eq_any(p, values)
    return {"$and": [{"$ex": {p: 1}}, *({"$neq": {p: v}} for v in values)]}


def _derived_test(atom: Atom, state: str) -> dict[str, Any]:
    threshold = atom.value
    if atom.op in ("known", "present"):
        if state == T:
            return {"$ex": {VALUE: 1}}
        return {UNDETERMINED: 1} if atom.op == "present" else {"$nex": {VALUE: 1}}
    if atom.op in _CMP:
        true_test = {_CMP[atom.op]: {_TRUE_BOUND[atom.op]: threshold}}
        false_test = {_NEG[atom.op]: {_FALSE_BOUND[atom.op]: threshold}}
        if state == T:
            return true_test
        if state == F:
            return {"$or": [false_test, {NOT_APPLICABLE: 1}]}
        # Undetermined: no bounds at all, or bounds on both sides of the threshold.
        not_true = {_NEG[atom.op]: {_TRUE_BOUND[atom.op]: threshold}}
        not_false = {_CMP[atom.op]: {_FALSE_BOUND[atom.op]: threshold}}
        return {"$and": [{UNDETERMINED: 1}, {"$or": [{"$nex": {LOW: 1}}, {"$and": [not_true, not_false]}]}]}
    if state == U:
        return {UNDETERMINED: 1}
    values = atom.value if atom.op == "in" else (atom.value,)
    if state == T:
        return _eq_any(VALUE, values)
    return {"$or": [{NOT_APPLICABLE: 1},
                    {"$and": [{"$ex": {VALUE: 1}}, *({"$neq": {VALUE: v}} for v in values)]}]}


def _literal_test(atom: Atom, states: States, derived: bool) -> dict[str, Any]:
    """The test for one literal; thresholds are already canonical (the resolve stage)."""
    make = _derived_test if derived else _input_test
    tests = [make(atom, s) for s in sorted(states)]
    return tests[0] if len(tests) == 1 else {"$or": tests}


def _absence(atom: Atom, states: States) -> tuple[bool, bool]:
    """(accepts an absent value, requires one) for one literal."""
    absent_state = F if atom.op == "known" else U
    return absent_state in states, states == frozenset(absent_state)


def _simplify(literals: list[tuple[Atom, States]], bounded: bool) -> list[tuple[Atom, States]] | None:
    """Fold literals that one absent value decides; None when the branch cannot match.

    An absent input (or an undetermined derived fact that carries no bounds) makes every atom on
    it undetermined at once, so "anc undetermined for one threshold, not known true for
    another" is just "anc absent". This keeps patterns under durable_rules' limit of 32
    expressions per pattern (ERR_EXPRESSION_LIMIT_EXCEEDED, 113) and cuts duplicate rules.
    """
    if bounded or not any(_absence(a, s)[1] for a, s in literals):
        return literals
    if not all(_absence(a, s)[0] for a, s in literals):
        return None  # one literal needs a value, another its absence
    atom = literals[0][0]
    # "Present" reads the fact, not a threshold: drop the threshold's value from the binding, or
    # the same folded literal from two thresholds would not be recognised as one.
    binding = replace(atom.binding, exact=None, written=None) if atom.binding else None
    return [(Atom(atom.fact, "present", None, atom.where, binding=binding), frozenset(U))]


def _reads(atom: Atom) -> str | None:
    """None for the patient's input, else the derived fact the atom reads (bound by resolve)."""
    assert atom.binding is not None, f"atom on '{atom.fact}' was not resolved"
    return atom.fact if atom.binding.derived else None


def branch_patterns(branch: Branch, bounded: frozenset[str]) -> tuple[Pattern, ...] | None:
    """The fact patterns of one branch; None when it cannot match. `bounded`: derived facts
    whose undetermined value still carries bounds (scores)."""
    by_fact: dict[str | None, list[tuple[Atom, States]]] = {}
    for atom, states in branch:
        by_fact.setdefault(_reads(atom), []).append((atom, states))
    if not by_fact:
        by_fact[None] = []  # anchor an unconditional branch on the patient
    patterns = []
    for i, (fact, lits) in enumerate(sorted(by_fact.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))):
        simple: list[tuple[Atom, States]] = []
        for name in dict.fromkeys(a.fact for a, _ in lits):  # the input pattern holds many facts
            folded = _simplify([(a, s) for a, s in lits if a.fact == name], fact in bounded)
            if folded is None:
                return None
            simple += folded
        patterns.append(Pattern(f"m_{i}", fact, tuple(simple)))
    return tuple(patterns)


def durable_rule(patterns: tuple[Pattern, ...], extra: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """durable_rules' JSON for one rule: every pattern must match (`extra`: plain facts by type)."""
    clauses = []
    for p in patterns:
        tests: list[dict[str, Any]] = [{TYPE: p.fact or INPUT}]
        tests += [_literal_test(a, s, p.fact is not None) for a, s in p.literals]
        clauses.append({p.name: tests[0] if len(tests) == 1 else {"$and": tests}})
    clauses += [{name: {TYPE: fact}} for name, fact in extra]
    return {"all": clauses}
