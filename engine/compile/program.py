"""Stage: compile. Resolved content -> one durable_rules ruleset plus the action behind each rule.

For every rule and score, each truth outcome (true / undetermined / false or not applicable) is
expanded into branches (engine/compile/kleene.py), each branch into fact patterns
(engine/compile/patterns.py), and each pattern list into one durable_rules rule whose action
(engine/compile/encoding.py) tells the runtime what the outcome means.
"""

from __future__ import annotations

from typing import Any

from engine.compile.encoding import (
    APPLICABILITY,
    Action,
    ActionKind,
    Pattern,
    Program,
    item_fact,
)
from engine.compile.kleene import ConditionTooLargeError, Undetermined, branches
from engine.compile.patterns import branch_patterns, durable_rule
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
        self.definition[name] = durable_rule(action.patterns, extra)
        self.actions[name] = action

    def each(self, cond: Condition | Undetermined, mode: str) -> list[tuple[Pattern, ...]]:
        """Distinct, satisfiable pattern lists under which `cond` is in truth `mode`."""
        out: dict[tuple[Pattern, ...], None] = {}
        try:
            expanded = branches(cond, mode)
        except ConditionTooLargeError as exc:
            raise ConditionTooLargeError(f"{self.owner}: {exc}", self.owner_where) from exc
        for branch in expanded:
            patterns = branch_patterns(branch, self.bounded)
            if patterns is not None:
                out.setdefault(patterns, None)
        return list(out)


def _effective(rule: Rule) -> Condition:
    """A derivation also needs every formula operand that has no default."""
    needed = [Atom(o.fact, "present", None, o.where, binding=o.binding)
              for o in operands(rule.value) if o.default is None]
    if isinstance(rule.value, Operand) and rule.value.default is None:
        needed = [Atom(rule.value.fact, "present", None, rule.value.where, binding=rule.value.binding)]
    return All((rule.when, *needed)) if needed else rule.when


def _numeric_bounds(rules: list[Rule]) -> tuple[float, float] | None:
    values = [r.value for r in rules]
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return (min(values), max(values))
    return None


def _population(b: _Builder, content: Content) -> None:
    """The population's condition true, undetermined and false, each a durable_rules rule like a
    recommendation's: whether the guideline applies is matched by the engine, not decided in Python."""
    if content.population is None:
        return
    b.owner, b.owner_where = "the population", content.population.where
    for kind, mode in ((ActionKind.POPULATION, "T"), (ActionKind.POPULATION_UNDETERMINED, "U"),
                       (ActionKind.POPULATION_NOT_MET, "F")):
        for pats in b.each(content.population.when, mode):
            b.add(Action(kind, APPLICABILITY, pats))


def compile_content(content: Content) -> Program:
    """The durable_rules ruleset definition and the action behind each of its rules."""
    if not content.resolved:  # thresholds would reach durable_rules in the unit they were written in
        raise ValueError("compile_content needs content bound by the resolve stage (engine/check/resolve.py)")
    b = _Builder(content)
    b.add(Action(ActionKind.START, "start", (Pattern("m_0", None),)))
    _population(b, content)

    by_fact: dict[str, list[Rule]] = {}
    for rule in content.rules:
        b.owner, b.owner_where = f"rule '{rule.id}'", rule.where
        if rule.recommend:
            for pats in b.each(rule.when, "T"):
                b.add(Action(ActionKind.RECOMMEND, rule.id, pats, rule=rule))
            for pats in b.each(rule.when, "U"):
                b.add(Action(ActionKind.RECOMMEND_UNDETERMINED, rule.id, pats, rule=rule))
        elif rule.derive:
            by_fact.setdefault(rule.derive, []).append(rule)

    for name, rules in by_fact.items():
        spec = content.derived[name]
        b.owner = f"the rules deriving '{name}' ({', '.join(r.id for r in rules)})"
        b.owner_where = rules[0].where
        cases = [(r, _effective(r)) for r in rules]
        for rule, cond in cases:
            for pats in b.each(cond, "T"):
                b.add(Action(ActionKind.DERIVE, name, pats, rule=rule, value=rule.value))
        if spec.type == "boolean" and not any(r.value is False for r in rules):
            # "false exactly when its true conditions are known false" (docs/format.md)
            for pats in b.each(Any_(tuple(c for _, c in cases)), "F"):
                b.add(Action(ActionKind.DERIVE, name, pats, value=False))
            na_mode = None
        else:
            na_mode = "F"
        either = Any_(tuple(c for _, c in cases))
        for pats in b.each(either, "U"):
            b.add(Action(ActionKind.DERIVE_UNDETERMINED, name, pats, bounds=_numeric_bounds(rules)))
        if na_mode:
            for pats in b.each(either, na_mode):
                b.add(Action(ActionKind.DERIVE_NOT_APPLICABLE, name, pats))

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
                    b.add(Action(ActionKind.ITEM, fact, pats, score=score, item=item, value=opt.points))
            either = Any_(tuple(o.when for o in item.options))
            # Undetermined is compiler-internal: _conditions expands it, the YAML model has no such node.
            for pats in b.each(All((score.applies_when, Undetermined(either))), "T"):  # type: ignore[arg-type]
                b.add(Action(ActionKind.ITEM_UNDETERMINED, fact, pats, score=score, item=item, bounds=(min(points), max(points))))
        for pats in applies:
            extra = tuple((f"i_{j}", item_fact(score, item)) for j, item in enumerate(score.items))
            b.add(Action(ActionKind.SCORE, score.fact, pats, score=score, item_patterns=extra), extra)
        for pats in b.each(score.applies_when, "U"):
            b.add(Action(ActionKind.SCORE_UNDETERMINED, score.fact, pats, score=score))
        for pats in b.each(score.applies_when, "F"):
            b.add(Action(ActionKind.SCORE_NOT_APPLICABLE, score.fact, pats, score=score))
    return Program(b.definition, b.actions, item_facts, {r.id: r for r in content.rules})


def compile_why_not(content: Content, program: Program) -> Program:
    """`program` plus, for every recommendation rule, the branches under which its condition is known
    false (RECOMMEND_FALSE), so the engine itself names the false parts when asked why a code did not
    fire. A separate program: normal evaluations never match these rules nor pay for them."""
    b = _Builder(content)
    b.definition, b.actions = dict(program.definition), dict(program.actions)
    for rule in content.rules:
        if rule.recommend:
            b.owner, b.owner_where = f"rule '{rule.id}'", rule.where
            for pats in b.each(rule.when, "F"):
                b.add(Action(ActionKind.RECOMMEND_FALSE, rule.id, pats, rule=rule))
    return Program(b.definition, b.actions, program.item_facts, program.rules)


def compile_without_missing(program: Program) -> Program:
    """`program` without its RECOMMEND_UNDETERMINED rules: for evaluations that do not report
    `missing` (a cohort row without it). Those rules derive nothing and fire no recommendation, so
    codes, derived facts and applicability are the same; they are 40 % of a patient's firings."""
    kept = {name: a for name, a in program.actions.items() if a.kind is not ActionKind.RECOMMEND_UNDETERMINED}
    return Program({name: program.definition[name] for name in kept}, kept, program.item_facts, program.rules)
