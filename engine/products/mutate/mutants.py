"""Mutants of resolved content (contract section 9): one small function per mutation operator.

Every condition of the guideline is reached through one list of condition owners (a rule's
`when`, a score's `applies_when`, each score option's `when`), so a new place holding a
condition is one more entry in `owners()`. Each operator takes one node of a condition and
yields what it becomes; a mutant is that replacement plus its location, its words and a hint of
the case that would tell it apart. Thresholds move in the unit their editor wrote them in, by one
unit of the written precision (7.0 g/dL -> 6.9 and 7.1; 21 -> 20 and 22; 500 /uL -> 499 and 501),
and are then bound again by the resolve stage, so the engine compares the mutant exactly as it
would compare that threshold written by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from engine.check.resolve import resolve_atom
from engine.errors import Problem
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
)
from engine.model.vocabulary import COMPARISONS
from engine.products.words import (
    as_written,
    binding,
    condition_words,
    number_words,
    unit_words,
)

Path = tuple[int, ...]  # child indexes from a condition's root to one node
FLIP = {"lt": "le", "le": "lt", "gt": "ge", "ge": "gt"}


@dataclass(frozen=True)
class Owner:
    """One place that holds a condition, and how to put a changed condition back."""

    rule: str                 # the id a report names (a rule id, or a score's "score:<id>")
    label: str                # words before the mutation ("" for a rule's own condition)
    deriving: str | None      # the derived fact its rule derives (how the resolve stage reads names)
    when: Condition
    put: Callable[[Content, Condition], Content]


@dataclass(frozen=True)
class Mutant:
    rule: str
    where: Where
    operator: str
    mutation: str             # in words, unique within its rule (equivalent_mutants names it so)
    hint: str                 # the case that would kill it
    facts: frozenset[str]     # the facts the mutated test reads (cases giving them are tried first)
    owner: int = -1           # index in owners(); -1 for a points mutant
    path: Path = ()
    node: Condition | None = None
    points: tuple[int, int, int, float] | None = None  # (score, item, option, new points)
    problems: tuple[Problem, ...] = field(default=(), compare=False)  # found while binding it

    @property
    def location(self) -> tuple[str, int, int]:
        line, col = self.where.doc.where(self.where.path)
        return self.where.doc.file, line, col


# --- condition owners ------------------------------------------------------------------------

POPULATION_OWNER = "population"  # how a report names guideline.yaml's population condition


def _put_population(content: Content, cond: Condition) -> Content:
    assert content.population is not None
    return replace(content, population=replace(content.population, when=cond))


def _put_rule(i: int) -> Callable[[Content, Condition], Content]:
    def put(content: Content, cond: Condition) -> Content:
        rules = list(content.rules)
        rules[i] = replace(rules[i], when=cond)
        return replace(content, rules=tuple(rules))
    return put


def _put_applies(s: int) -> Callable[[Content, Condition], Content]:
    def put(content: Content, cond: Condition) -> Content:
        scores = list(content.scores)
        scores[s] = replace(scores[s], applies_when=cond)
        return replace(content, scores=tuple(scores))
    return put


def _put_option(s: int, i: int, o: int, *, points: float | None = None) -> Callable[[Content, Condition], Content]:
    def put(content: Content, cond: Condition) -> Content:
        scores = list(content.scores)
        items = list(scores[s].items)
        options = list(items[i].options)
        options[o] = replace(options[o], when=cond, points=options[o].points if points is None else points)
        items[i] = replace(items[i], options=tuple(options))
        scores[s] = replace(scores[s], items=tuple(items))
        return replace(content, scores=tuple(scores))
    return put


def owners(content: Content) -> list[Owner]:
    """Every condition of the guideline: the population's (guideline.yaml), then in file order."""
    found = [Owner(POPULATION_OWNER, "", None, content.population.when, _put_population)] if content.population else []
    found += [Owner(rule.id, "", rule.derive, rule.when, _put_rule(i)) for i, rule in enumerate(content.rules)]
    for s, score in enumerate(content.scores):
        found.append(Owner(score.rule_id, "applies when: ", None, score.applies_when, _put_applies(s)))
        for i, item in enumerate(score.items):
            for o, opt in enumerate(item.options):
                found.append(Owner(score.rule_id, f"{item.id} ({number_words(opt.points)} points): ", None,
                                   opt.when, _put_option(s, i, o)))
    return found


# --- walking and rewriting a condition ---------------------------------------------------------

def _children(cond: Condition) -> tuple[Condition, ...]:
    if isinstance(cond, Not):
        return (cond.item,)
    if isinstance(cond, (All, Any_, NoneKnown)):
        return cond.items
    return ()


def nodes(cond: Condition, path: Path = ()) -> Iterator[tuple[Path, Condition]]:
    """Every node of a condition with its path, parents before children."""
    yield path, cond
    for i, child in enumerate(_children(cond)):
        yield from nodes(child, path + (i,))


def substitute(cond: Condition, path: Path, new: Condition) -> Condition:
    """`cond` with the node at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(cond, Not):
        return Not(substitute(cond.item, rest, new))
    assert isinstance(cond, (All, Any_, NoneKnown))
    items = list(cond.items)
    items[head] = substitute(items[head], rest, new)
    return replace(cond, items=tuple(items))


def node_where(cond: Condition) -> Where:
    """Where a node was written: an atom's own test, or the deepest mapping holding all its atoms."""
    found = atoms(cond)
    if isinstance(cond, Atom):
        return cond.where
    common = found[0].where.path
    for a in found[1:]:
        n = 0
        while n < min(len(common), len(a.where.path)) and common[n] == a.where.path[n]:
            n += 1
        common = common[:n]
    if len(found) == 1:
        common = common[:-1]  # the mapping, not the test key
    return Where(found[0].where.doc, common)


# --- the operators ------------------------------------------------------------------------------

Change = tuple[str, Condition, str, str, tuple[Problem, ...]]  # operator, new node, words, hint


def _arrow(fact: str, before: str, after: str) -> str:
    """'hemoglobin < 7.0 g/dL → ≤ 7.0 g/dL': the fact is not repeated after the arrow."""
    prefix = fact + " "
    return f"{before} → {after[len(prefix):]}" if before.startswith(prefix) and after.startswith(prefix) \
        else f"{before} → {after}"


def _step(value: Any) -> Decimal:
    """One unit of the written precision: 1 for 21, 0.1 for 7.0, 0.01 for 0.25."""
    exponent = Decimal(repr(value)).as_tuple().exponent if isinstance(value, float) else 0
    assert isinstance(exponent, int)
    return Decimal(1).scaleb(exponent)


def _differs(op: str, old: str, new: str, old_value: Decimal, new_value: Decimal) -> str:
    """The interval of values on which `op old` and `op new` disagree, in interval notation."""
    low, high = sorted((old_value, new_value))
    lo, hi = (old, new) if old_value < new_value else (new, old)
    closed_low = op in ("lt", "ge")  # x < c vs x < c': they differ on [low, high)
    return f"{'[' if closed_low else '('}{lo}, {hi}{')' if closed_low else ']'}" if low != high else lo


def threshold(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """A threshold moved one written step down and up, and its strictness flipped."""
    if not isinstance(node, Atom) or node.op not in COMPARISONS:
        return
    value, unit = binding(node).written or (node.value, node.unit)
    shown = f" {unit_words(unit)}" if unit_words(unit) else ""
    step = _step(value)
    for moved in (Decimal(repr(value)) - step, Decimal(repr(value)) + step):
        new_value: Any = float(moved) if isinstance(value, float) else int(moved)
        new, problems = resolve_atom(content, Atom(node.fact, node.op, new_value, node.where, unit), owner.deriving)
        region = _differs(node.op, number_words(value), number_words(new_value), Decimal(repr(value)), moved)
        yield ("threshold", new, _arrow(node.fact, as_written(node), as_written(new)),
               f"no case has {node.fact} in {region}{shown} where this test decides the outcome", tuple(problems))
    flipped = replace(node, op=FLIP[node.op])
    yield ("strictness", flipped, _arrow(node.fact, as_written(node), as_written(flipped)),
           f"no case has {node.fact} exactly {number_words(value)}{shown} where this test decides the outcome", ())


def boolean(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """`is: true` ↔ `is: false`."""
    if isinstance(node, Atom) and node.op == "is" and isinstance(node.value, bool):
        new = replace(node, value=not node.value)
        yield ("boolean", new, _arrow(node.fact, condition_words(node), condition_words(new)),
               f"no case where {node.fact} {number_words(node.value)} (against {number_words(new.value)}) "
               "decides this rule", ())


def enum_is(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """An enum value in `is` swapped for each other value of the enum."""
    if not (isinstance(node, Atom) and node.op == "is" and isinstance(node.value, str)):
        return
    for other in binding(node).spec.values:
        if other != node.value:
            new = replace(node, value=other)
            yield ("enum-swap", new, _arrow(node.fact, condition_words(node), condition_words(new)),
                   f"no case where {node.fact} {node.value} or {other} decides this rule", ())


def enum_in(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """Each value of an `in` list swapped for each enum value not in it, or dropped (lists of ≥ 2)."""
    if not (isinstance(node, Atom) and node.op == "in"):
        return
    values = tuple(node.value)
    for j, value in enumerate(values):
        for other in binding(node).spec.values:
            if other not in values:
                new = replace(node, value=values[:j] + (other,) + values[j + 1:])
                yield ("enum-swap", new, _arrow(node.fact, condition_words(node), condition_words(new)),
                       f"no case where {node.fact} {value} or {other} decides this rule", ())
    if len(values) >= 2:
        for j, value in enumerate(values):
            new = replace(node, value=values[:j] + values[j + 1:])
            yield ("enum-drop", new, _arrow(node.fact, condition_words(node), condition_words(new)),
                   f"no case where {node.fact} {value} decides this rule", ())


def all_any(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """`all` ↔ `any` (of two parts or more)."""
    if isinstance(node, (All, Any_)) and len(node.items) >= 2:
        new: Condition = Any_(node.items) if isinstance(node, All) else All(node.items)
        old, now = ("all", "any") if isinstance(node, All) else ("any", "all")
        yield ("all-any", new, f"{old} → {now}: {condition_words(node)}",
               f"no case where some but not all parts of this '{old}' hold", ())


def drop_part(owner: Owner, node: Condition, content: Content) -> Iterator[Change]:
    """Each part of an `all` / `any` of two parts or more dropped."""
    if not (isinstance(node, (All, Any_)) and len(node.items) >= 2):
        return
    kind = "all" if isinstance(node, All) else "any"
    n = len(node.items)
    for k, part in enumerate(node.items):
        rest = node.items[:k] + node.items[k + 1:]
        new: Condition = rest[0] if len(rest) == 1 else replace(node, items=rest)
        alone = "is false while every other part holds" if kind == "all" else "alone holds"
        yield ("drop-part", new, f"drop part {k + 1} of {n} of '{kind}': {condition_words(part)}",
               f"no case where part {k + 1} ({condition_words(part)}) {alone}", ())


OPERATORS = (threshold, boolean, enum_is, enum_in, all_any, drop_part)


# --- mutants -----------------------------------------------------------------------------------

def _condition_mutants(content: Content) -> Iterator[Mutant]:
    for o, owner in enumerate(owners(content)):
        for path, node in nodes(owner.when):
            for operator in OPERATORS:
                for name, new, words, hint, problems in operator(owner, node, content):
                    facts = frozenset(a.fact for a in atoms(node)) | ({owner.deriving} if owner.deriving else set())
                    yield Mutant(owner.rule, node_where(node), name, owner.label + words, hint, facts,
                                 o, path, new, problems=problems)


def _option_where(cond: Condition) -> Where:
    """The `points:` value of the score option holding `cond`."""
    where = atoms(cond)[0].where
    cut = len(where.path) - 1 - list(reversed(where.path)).index("when")
    return Where(where.doc, where.path[:cut] + ("points",))


def _points(points: float) -> str:
    return f"{number_words(points)} point{'' if points in (1, -1) else 's'}"


def _points_mutants(content: Content) -> Iterator[Mutant]:
    """Each score option's points one up and one down."""
    for s, score in enumerate(content.scores):
        for i, item in enumerate(score.items):
            for o, opt in enumerate(item.options):
                for new in (opt.points - 1, opt.points + 1):
                    yield Mutant(score.rule_id, _option_where(opt.when), "points",
                                 f"{item.id}: {_points(opt.points)} ({condition_words(opt.when)}) → "
                                 f"{_points(new)}",
                                 f"no case checks {score.fact} (or what it decides) where {item.id} scores "
                                 f"{_points(opt.points)} ({condition_words(opt.when)}) and one point more or "
                                 "less changes the outcome",
                                 frozenset(a.fact for a in atoms(opt.when)) | {score.fact},
                                 points=(s, i, o, new))


def generate(content: Content) -> list[Mutant]:
    """Every mutant of resolved `content`, in file order; words made unique within each rule."""
    found = list(_condition_mutants(content)) + list(_points_mutants(content))
    counts = Counter((m.rule, m.mutation) for m in found)
    out = []
    for m in found:
        if counts[(m.rule, m.mutation)] > 1:
            _, line, col = m.location
            m = replace(m, mutation=f"{m.mutation} (at {line}:{col})")
        out.append(m)
    return out


def apply(content: Content, mutant: Mutant) -> Content:
    """The content with this one mutation."""
    if mutant.points is not None:
        s, i, o, new = mutant.points
        opt = content.scores[s].items[i].options[o]
        return _put_option(s, i, o, points=new)(content, opt.when)
    owner = owners(content)[mutant.owner]
    assert mutant.node is not None
    return owner.put(content, substitute(owner.when, mutant.path, mutant.node))
