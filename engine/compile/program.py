"""Stage 3: compile validated content into one durable_rules ruleset plus an action table.

Facts inside durable_rules:
- the patient: ONE fact `{t: "$input", <input name>: value, ...}`; an absent property is an
  unknown value. One fact means input order cannot matter and nothing arrives "late".
- each derived fact: `{t: <name>, v: value, lo: n, hi: n}` when known (lo/hi for numbers),
  `{t: <name>, u: 1[, lo, hi]}` when undetermined (bounds when they are still limited, as for a
  score with missing items), `{t: <name>, na: 1}` when it does not apply.
Every derived fact is resolved to exactly one of these three by rules that test positive
literals only (see _conditions), so no rule depends on the absence of a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compile.kleene import (
    Branch,
    ConditionTooLargeError,
    F,
    States,
    T,
    U,
    Undetermined,
    branches,
)
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Operand,
    Rule,
    Score,
    ScoreItem,
    Where,
    operands,
)
from engine.model.units import convert

INPUT = "$input"

_CMP = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_NEG = {"lt": "$gte", "le": "$gt", "gt": "$lte", "ge": "$lt"}
# On an interval [lo, hi]: "x < c" is true when hi < c and false when lo >= c, and so on.
_TRUE_BOUND = {"lt": "hi", "le": "hi", "gt": "lo", "ge": "lo"}
_FALSE_BOUND = {"lt": "lo", "le": "lo", "gt": "hi", "ge": "hi"}


@dataclass(frozen=True)
class Pattern:
    """One fact pattern of a durable rule: the input fact (fact=None) or a derived fact."""

    name: str
    fact: str | None
    literals: tuple[tuple[Atom, States], ...] = ()


@dataclass(frozen=True)
class Action:
    """What to do when a durable rule fires. `kind` selects the runtime handler."""

    kind: str            # recommend | recommend-u | derive | derive-u | derive-na | item | item-u | score |
                         # score-u | score-na | start
    target: str          # rule id, fact name or score id
    patterns: tuple[Pattern, ...] = ()
    rule: Rule | None = None
    score: Score | None = None
    item: ScoreItem | None = None
    value: Any = None
    bounds: tuple[float, float] | None = None
    item_patterns: tuple[tuple[str, str], ...] = ()  # (pattern name, item fact) for a score total


@dataclass(frozen=True)
class Program:
    definition: dict[str, Any]
    actions: dict[str, Action]
    item_facts: dict[str, tuple[Score, ScoreItem]] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)


def item_fact(score: Score, item: ScoreItem) -> str:
    return f"{score.fact}#{item.id}"


def _source(atom: Atom, content: Content, deriving: str | None) -> str | None:
    """None for the input fact, else the derived fact the atom reads."""
    if atom.fact in content.derived and atom.fact != deriving:
        return atom.fact
    if atom.fact in content.derived and atom.fact not in content.facts:
        return atom.fact
    return None


def _eq_any(prop: str, values: tuple[Any, ...]) -> dict[str, Any]:
    tests = [{prop: v} for v in values]
    return tests[0] if len(tests) == 1 else {"$or": tests}


def _input_test(atom: Atom, state: str, threshold: Any) -> dict[str, Any]:
    p = atom.fact
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


def _derived_test(atom: Atom, state: str, threshold: Any) -> dict[str, Any]:
    if atom.op in ("known", "present"):
        if state == T:
            return {"$ex": {"v": 1}}
        return {"u": 1} if atom.op == "present" else {"$nex": {"v": 1}}
    if atom.op in _CMP:
        true_test = {_CMP[atom.op]: {_TRUE_BOUND[atom.op]: threshold}}
        false_test = {_NEG[atom.op]: {_FALSE_BOUND[atom.op]: threshold}}
        if state == T:
            return true_test
        if state == F:
            return {"$or": [false_test, {"na": 1}]}
        # Undetermined: no bounds at all, or bounds on both sides of the threshold.
        not_true = {_NEG[atom.op]: {_TRUE_BOUND[atom.op]: threshold}}
        not_false = {_CMP[atom.op]: {_FALSE_BOUND[atom.op]: threshold}}
        return {"$and": [{"u": 1}, {"$or": [{"$nex": {"lo": 1}}, {"$and": [not_true, not_false]}]}]}
    if state == U:
        return {"u": 1}
    values = atom.value if atom.op == "in" else (atom.value,)
    if state == T:
        return _eq_any("v", values)
    return {"$or": [{"na": 1}, {"$and": [{"$ex": {"v": 1}}, *({"$neq": {"v": v}} for v in values)]}]}


def _literal_test(atom: Atom, states: States, derived: bool, content: Content) -> dict[str, Any]:
    threshold = atom.value
    if atom.op in _CMP and atom.unit:
        # Thresholds written in another accepted unit are converted exactly, as input is.
        spec = content.facts.get(atom.fact) or content.derived[atom.fact]
        conv = spec.conversion(atom.unit)
        if conv is not None:
            threshold = convert(atom.value, conv)
    make = _derived_test if derived else _input_test
    tests = [make(atom, s, threshold) for s in sorted(states)]
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
    return [(Atom(atom.fact, "present", None, atom.where), frozenset(U))]


def _patterns(branch: Branch, content: Content, deriving: str | None,
              bounded: frozenset[str]) -> tuple[Pattern, ...] | None:
    by_fact: dict[str | None, list[tuple[Atom, States]]] = {}
    for atom, states in branch:
        by_fact.setdefault(_source(atom, content, deriving), []).append((atom, states))
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


def _durable_rule(patterns: tuple[Pattern, ...], content: Content,
                  extra: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    clauses = []
    for p in patterns:
        tests: list[dict[str, Any]] = [{"t": p.fact or INPUT}]
        tests += [_literal_test(a, s, p.fact is not None, content) for a, s in p.literals]
        clauses.append({p.name: tests[0] if len(tests) == 1 else {"$and": tests}})
    clauses += [{name: {"t": fact}} for name, fact in extra]
    return {"all": clauses}


class _Builder:
    def __init__(self, content: Content):
        self.content = content
        self.definition: dict[str, Any] = {}
        # The rule or score being compiled, to locate a ConditionTooLargeError.
        self.owner: str = ""
        self.owner_where: Where | None = None
        self.actions: dict[str, Action] = {}
        # Derived facts whose undetermined value can still carry bounds (scores, point values).
        self.bounded = frozenset(
            [s.fact for s in content.scores]
            + [name for name in content.derived
               if _numeric_bounds([r for r in content.rules if r.derive == name]) is not None])

    def add(self, action: Action, extra: tuple[tuple[str, str], ...] = ()) -> None:
        name = f"r{len(self.actions)}"
        self.definition[name] = _durable_rule(action.patterns, self.content, extra)
        self.actions[name] = action

    def each(self, cond: Condition | Undetermined, mode: str,
             deriving: str | None = None) -> list[tuple[Pattern, ...]]:
        """Distinct, satisfiable pattern lists under which `cond` is in truth `mode`."""
        out: dict[tuple[Pattern, ...], None] = {}
        try:
            expanded = branches(cond, mode)
        except ConditionTooLargeError as exc:
            raise ConditionTooLargeError(f"{self.owner}: {exc}", self.owner_where) from exc
        for branch in expanded:
            patterns = _patterns(branch, self.content, deriving, self.bounded)
            if patterns is not None:
                out.setdefault(patterns, None)
        return list(out)


def _effective(rule: Rule) -> Condition:
    """A derivation also needs every formula operand that has no default."""
    needed = [Atom(o.fact, "present", None, o.where) for o in operands(rule.value) if o.default is None]
    if isinstance(rule.value, Operand) and rule.value.default is None:
        needed = [Atom(rule.value.fact, "present", None, rule.value.where)]
    return All((rule.when, *needed)) if needed else rule.when


def _numeric_bounds(rules: list[Rule]) -> tuple[float, float] | None:
    values = [r.value for r in rules]
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return (min(values), max(values))
    return None


def compile_content(content: Content) -> Program:
    """The durable_rules ruleset definition and the action behind each of its rules."""
    b = _Builder(content)
    b.add(Action("start", "start", (Pattern("m_0", None),)))

    by_fact: dict[str, list[Rule]] = {}
    for rule in content.rules:
        b.owner, b.owner_where = f"rule '{rule.id}'", rule.where
        if rule.recommend:
            for pats in b.each(rule.when, "T"):
                b.add(Action("recommend", rule.id, pats, rule=rule))
            for pats in b.each(rule.when, "U"):
                b.add(Action("recommend-u", rule.id, pats, rule=rule))
        elif rule.derive:
            by_fact.setdefault(rule.derive, []).append(rule)

    for name, rules in by_fact.items():
        spec = content.derived[name]
        b.owner = f"the rules deriving '{name}' ({', '.join(r.id for r in rules)})"
        b.owner_where = rules[0].where
        cases = [(r, _effective(r)) for r in rules]
        for rule, cond in cases:
            for pats in b.each(cond, "T", name):
                b.add(Action("derive", name, pats, rule=rule, value=rule.value))
        if spec.type == "boolean" and not any(r.value is False for r in rules):
            # "false exactly when its true conditions are known false" (docs/format.md)
            for pats in b.each(Any_(tuple(c for _, c in cases)), "F", name):
                b.add(Action("derive", name, pats, value=False))
            na_mode = None
        else:
            na_mode = "F"
        either = Any_(tuple(c for _, c in cases))
        for pats in b.each(either, "U", name):
            b.add(Action("derive-u", name, pats, bounds=_numeric_bounds(rules)))
        if na_mode:
            for pats in b.each(either, na_mode, name):
                b.add(Action("derive-na", name, pats))

    item_facts: dict[str, tuple[Score, ScoreItem]] = {}
    for score in content.scores:
        b.owner, b.owner_where = f"score '{score.id}'", score.where
        applies = b.each(score.applies_when, "T")
        for item in score.items:
            fact = item_fact(score, item)
            item_facts[fact] = (score, item)
            points = [o.points for o in item.options]
            for opt in item.options:
                for pats in b.each(All((score.applies_when, opt.when)), "T"):
                    b.add(Action("item", fact, pats, score=score, item=item, value=opt.points))
            either = Any_(tuple(o.when for o in item.options))
            # Undetermined is compiler-internal: _conditions expands it, the YAML model has no such node.
            for pats in b.each(All((score.applies_when, Undetermined(either))), "T"):  # type: ignore[arg-type]
                b.add(Action("item-u", fact, pats, score=score, item=item, bounds=(min(points), max(points))))
        for pats in applies:
            extra = tuple((f"i_{j}", item_fact(score, item)) for j, item in enumerate(score.items))
            b.add(Action("score", score.fact, pats, score=score, item_patterns=extra), extra)
        for pats in b.each(score.applies_when, "U"):
            b.add(Action("score-u", score.fact, pats, score=score))
        for pats in b.each(score.applies_when, "F"):
            b.add(Action("score-na", score.fact, pats, score=score))
    return Program(b.definition, b.actions, item_facts, {r.id: r for r in content.rules})
