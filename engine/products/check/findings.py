"""The properties `guideline check` proves over every patient, one function per finding kind.

- conflict: a patient for whom two codes declared `conflicts_with` both fire;
- gap: a patient for whom a `guidance_expected` condition is known true and no code fires;
- dead: a rule no patient can make fire (its condition, through derived facts, is unsatisfiable);
- shadowed: a rule recommending a code that never fires without another rule recommending the
  same code (removing it changes no result), or a threshold made redundant by another test on the
  same fact in the same `all` (the stronger one decides) or `any` (the weaker one decides);
- unread: a derived fact no rule, score or expectation reads.
Conflicts and gaps come with a witness patient that the real engine confirms before it is
reported (engine/products/check/confirm.py); dead and shadowed rules are proofs that no such
patient exists, and unread facts and shadowed thresholds are read off the resolved model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import z3

from engine.check.conflicts import conflict_pairs
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    NoneKnown,
    Not,
    Where,
    atoms,
    operands,
)
from engine.products.check.encode import Encoding
from engine.products.check.probe import probe_code
from engine.products.check.search import Searcher

KINDS = ("conflict", "gap", "dead", "shadowed", "unread")


@dataclass(frozen=True)
class Finding:
    """One property that does not hold, located, with the patient who shows it (if any)."""

    kind: str
    message: str
    codes: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    witness: dict[str, Any] | None = None
    rule: str | None = None          # dead / shadowed
    fact: str | None = None          # unread / shadowed threshold
    expectation: str | None = None   # gap: the expectation's description
    accepted: tuple[str, str] | None = None  # (reason, where the decision is recorded)
    confirmed: tuple[str, ...] = field(default=(), compare=False)  # codes the engine gave the witness

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "codes": list(self.codes), "witness": self.witness,
                               "locations": list(self.locations), "message": self.message}
        for key in ("rule", "fact", "expectation"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.witness is not None:
            out["recommended"] = list(self.confirmed)
        out["accepted"] = {"reason": self.accepted[0], "decision": self.accepted[1]} if self.accepted else None
        return out

    def accept(self, reason: str, where: str) -> Finding:
        return replace(self, accepted=(reason, where))


def location(where: Where | None, *suffix: str | int) -> str:
    if where is None:
        return "?"
    line, col = where.doc.where(where.path + suffix)
    return f"{where.doc.file}:{line}:{col}"


def _in_population(enc: Encoding) -> z3.BoolRef:
    """Not known to be outside the guideline's population (always, when it declares none)."""
    return z3.Not(enc.outside_population)


def conflicts(content: Content, enc: Encoding, search: Searcher) -> Iterator[Finding]:
    for a, b in conflict_pairs(content):
        witness = search.witness(z3.And(enc.code_fires(a), enc.code_fires(b), _in_population(enc)))
        if witness is None:
            continue
        declared = [location(rec.where, "conflicts_with") for code, rec in content.catalogue.items()
                    if {code, *rec.conflicts_with} >= {a, b}]
        rules = [location(r.where) for r in content.rules if r.recommend in (a, b)]
        yield Finding("conflict", f"'{a}' and '{b}' are declared in conflict, yet both are recommended "
                      "for this patient", (a, b), tuple(dict.fromkeys(declared + rules)), witness)


def gaps(content: Content, enc: Encoding, search: Searcher) -> Iterator[Finding]:
    nothing = z3.And([z3.Not(enc.code_fires(code)) for code in content.catalogue])
    for i, expected in enumerate(content.guidance_expected):
        witness = search.witness(z3.And(enc.code_fires(probe_code(i)), nothing, _in_population(enc)))
        if witness is None:
            continue
        note = f" (editors' note: {expected.note.strip()})" if expected.note else ""
        yield Finding("gap", f"guidance is expected for {expected.description}, yet this patient (for whom "
                      f"that is known true) gets no recommendation at all{note}", (),
                      (location(expected.where, "when"),), witness, expectation=expected.description)


def dead(content: Content, enc: Encoding, search: Searcher) -> Iterator[Finding]:
    for rule in content.rules:
        if not search.possible(enc.rule_fires(rule.id)):
            what = f"recommends '{rule.recommend}'" if rule.recommend else f"derives '{rule.derive}'"
            yield Finding("dead", f"rule '{rule.id}' ({what}) can never fire: no patient, with any facts known "
                          "or unknown, satisfies its condition", (rule.recommend,) if rule.recommend else (),
                          (location(rule.where, "when"),), rule=rule.id)


def shadowed_rules(content: Content, enc: Encoding, search: Searcher) -> Iterator[Finding]:
    by_code: dict[str, list[str]] = {}
    for rule in content.rules:
        if rule.recommend:
            by_code.setdefault(rule.recommend, []).append(rule.id)
    for code, ids in by_code.items():
        for rid in ids if len(ids) > 1 else ():
            others = [o for o in ids if o != rid]
            alone = z3.And(enc.rule_fires(rid), z3.Not(z3.Or([enc.rule_fires(o) for o in others])))
            if search.possible(enc.rule_fires(rid)) and not search.possible(alone):
                rule = next(r for r in content.rules if r.id == rid)
                yield Finding("shadowed", f"rule '{rid}' never recommends '{code}' on its own: whenever it fires, "
                              f"{' or '.join(repr(o) for o in others)} also does", (code,),
                              (location(rule.where, "when"),), rule=rid)


# --- static: thresholds, unread facts ---------------------------------------------------------

_UPPER, _LOWER = ("lt", "le"), ("gt", "ge")


def _implies(a: Atom, b: Atom) -> bool:
    """Whether every value passing threshold test `a` passes `b` (same fact, same direction)."""
    ca, cb = _exact(a), _exact(b)
    if a.op in _UPPER:
        return ca < cb or (ca == cb and not (a.op == "le" and b.op == "lt"))
    return ca > cb or (ca == cb and not (a.op == "ge" and b.op == "gt"))


def _exact(atom: Atom) -> Fraction:
    exact = atom.binding.exact if atom.binding is not None else None
    return exact if exact is not None else Fraction(str(atom.value))


def _redundant(items: tuple[Condition, ...], conjunction: bool) -> Iterator[tuple[Atom, Atom]]:
    """(shadowed, deciding) pairs among sibling threshold tests."""
    tests = [c for c in items if isinstance(c, Atom) and c.op in _UPPER + _LOWER and c.binding is not None]
    for a in tests:
        for b in tests:
            same = (a is not b and a.fact == b.fact and a.binding.derived == b.binding.derived  # type: ignore[union-attr]
                    and (a.op in _UPPER) == (b.op in _UPPER))
            if same and _implies(a, b) and not (_implies(b, a) and tests.index(b) < tests.index(a)):
                yield (b, a) if conjunction else (a, b)


def _walk(cond: Condition) -> Iterator[tuple[tuple[Condition, ...], bool]]:
    if isinstance(cond, Not):
        yield from _walk(cond.item)
    elif isinstance(cond, (All, Any_, NoneKnown)):
        yield cond.items, isinstance(cond, All)
        for item in cond.items:
            yield from _walk(item)


def shadowed_thresholds(content: Content) -> Iterator[Finding]:
    for rule in content.rules:
        for items, conjunction in _walk(rule.when):
            for weak, strong in _redundant(items, conjunction):
                joined = "all" if conjunction else "any"
                yield Finding("shadowed", f"rule '{rule.id}': the test '{weak.fact} {weak.op} {weak.value}' is "
                              f"decided by '{strong.fact} {strong.op} {strong.value}' beside it (in the same "
                              f"'{joined}'), so it never changes the outcome", (rule.recommend,) if rule.recommend
                              else (), (location(weak.where),), rule=rule.id, fact=weak.fact)


def unread(content: Content) -> Iterator[Finding]:
    read: set[str] = set()
    conds: list[Condition] = [r.when for r in content.rules] + [e.when for e in content.guidance_expected]
    for score in content.scores:
        conds += [score.applies_when] + [o.when for item in score.items for o in item.options]
    for cond in conds:
        read |= {a.fact for a in atoms(cond) if a.binding is not None and a.binding.derived}
    read |= {o.fact for r in content.rules for o in operands(r.value) if o.binding is not None and o.binding.derived}
    outputs = {s.range_fact for s in content.scores if s.range_fact}  # the score's own range, never a rule's input
    for name, spec in content.derived.items():
        if name not in read and name not in outputs:
            yield Finding("unread", f"derived fact '{name}' is read by no rule, score or expectation: it is "
                          "only reported", (), (location(spec.where),), fact=name)
