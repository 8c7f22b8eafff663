"""The compiled program as z3 constraints: every possible patient, and what durable_rules does for them.

Mirrors what durable_rules is given, not the YAML: every compiled rule (engine/compile/program.py
`Program.actions`) is a conjunction of fact patterns whose literals are tested exactly as
engine/compile/patterns.py writes them (input: absent = undetermined; derived facts: the
v / lo / hi / u / na fields of engine/compile/encoding.py). A compiled rule *fires* when all its
patterns match; a derived fact exists when one of its rules fires, and then holds that rule's
outcome. Nothing is retracted in durable_rules and every pattern is positive, so the facts at
the end of an evaluation are exactly this fixpoint, which the constraints describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import z3

from engine.compile.encoding import Action, ActionKind, Pattern, Program
from engine.compile.kleene import F, States, T, U
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Formula,
    NoneKnown,
    Not,
    Operand,
)

Formula_ = Any  # a z3 expression (z3's stubs are loose)

_OPS = {"lt": lambda x, c: x < c, "le": lambda x, c: x <= c,
        "gt": lambda x, c: x > c, "ge": lambda x, c: x >= c}
# On an interval [lo, hi]: "x < c" is true when hi < c and false when lo >= c (patterns.py).
_TRUE_BOUND = {"lt": "hi", "le": "hi", "gt": "lo", "ge": "lo"}
_FALSE_BOUND = {"lt": "lo", "le": "lo", "gt": "hi", "ge": "hi"}


def real(value: Any) -> Formula_:
    """An exact z3 real for a number (a float's shortest decimal, as JSON would write it)."""
    if isinstance(value, Fraction):
        return z3.RealVal(f"{value.numerator}/{value.denominator}")
    return z3.RealVal(str(Fraction(str(value))) if isinstance(value, float) else str(value))


@dataclass
class InputVar:
    """One input fact: whether it is given, and its value (number, boolean or one flag per value)."""

    name: str
    type: str
    known: Formula_
    value: Formula_ = None
    choices: dict[str, Formula_] = field(default_factory=dict)


@dataclass
class FactVar:
    """One derived fact (or score item / total) as durable_rules holds it, or its absence."""

    name: str
    known: Formula_      # `v` present
    undetermined: Formula_  # `u` present
    na: Formula_         # `na` present
    bounded: Formula_    # `lo` / `hi` present
    lo: Formula_
    hi: Formula_
    value: Formula_ = None  # number or boolean
    choices: dict[str, Formula_] = field(default_factory=dict)  # enum

    @property
    def exists(self) -> Formula_:
        return z3.Or(self.known, self.undetermined, self.na)


def _threshold(atom: Atom) -> Formula_:
    exact = atom.binding.exact if atom.binding is not None else None
    return real(exact if exact is not None else atom.value)


# Compiled rules that assert no fact: they recommend, record, or decide the population.
_NO_FACT = frozenset({ActionKind.START, ActionKind.RECOMMEND, ActionKind.RECOMMEND_UNDETERMINED,
                      ActionKind.RECOMMEND_FALSE, ActionKind.POPULATION, ActionKind.POPULATION_UNDETERMINED,
                      ActionKind.POPULATION_NOT_MET})


class Encoding:
    """z3 variables and constraints for every patient of one compiled guideline."""

    def __init__(self, content: Content, program: Program):
        self.content, self.program = content, program
        self.constraints: list[Formula_] = []
        self.inputs = {name: self._input(name, spec.type, spec.range, spec.values)
                       for name, spec in content.facts.items()}
        targets: dict[str, list[tuple[str, Action]]] = {}
        for rule_name, action in program.actions.items():
            if action.kind not in _NO_FACT:
                targets.setdefault(action.target, []).append((rule_name, action))
        # Every derived fact, also one no rule derives (it never exists in durable_rules).
        self.facts = {name: self._fact(name) for name in {**dict.fromkeys(content.derived), **targets}}
        self.constraints += [z3.Not(f.exists) for name, f in self.facts.items() if name not in targets]
        self.fires: dict[str, Formula_] = {}
        for rule_name, action in program.actions.items():
            self.fires[rule_name] = z3.Bool(f"fires:{rule_name}")
            self.constraints.append(self.fires[rule_name] == self._matches(action))
        # A patient known outside the population gets no recommendation (contract section 7).
        self.outside_population: Formula_ = z3.Or([self.fires[r] for r, a in program.actions.items()
                                                   if a.kind is ActionKind.POPULATION_NOT_MET] or [z3.BoolVal(False)])
        for name, actions in targets.items():
            fact = self.facts[name]
            # The fact exists exactly when one of its rules fired; each firing fixes its outcome
            # (two different outcomes are an engine error, so such patients are not considered).
            self.constraints.append(fact.exists == z3.Or([self.fires[r] for r, _ in actions]))
            self.constraints += [z3.Implies(self.fires[r], self._outcome(a, fact)) for r, a in actions]

    # --- variables -------------------------------------------------------------------------
    def _input(self, name: str, type_: str, range_: tuple[float, float] | None, values: tuple[str, ...]) -> InputVar:
        var = InputVar(name, type_, z3.Bool(f"known:{name}"))
        if type_ == "boolean":
            var.value = z3.Bool(f"in:{name}")
        elif type_ == "enum":
            var.choices = {v: z3.Bool(f"in:{name}={v}") for v in values}
            self.constraints.append(z3.Implies(var.known, z3.PbEq([(c, 1) for c in var.choices.values()], 1)))
        else:
            var.value = z3.Real(f"in:{name}")
            if range_ is not None:
                self.constraints.append(z3.Implies(var.known, z3.And(var.value >= real(range_[0]),
                                                                   var.value <= real(range_[1]))))
        return var

    def _fact(self, name: str) -> FactVar:
        spec = self.content.derived.get(name)
        var = FactVar(name, z3.Bool(f"v:{name}"), z3.Bool(f"u:{name}"), z3.Bool(f"na:{name}"),
                      z3.Bool(f"b:{name}"), z3.Real(f"lo:{name}"), z3.Real(f"hi:{name}"))
        self.constraints.append(z3.AtMost(var.known, var.undetermined, var.na, 1))
        if spec is not None and spec.type == "boolean":
            var.value = z3.Bool(f"d:{name}")
            self.constraints.append(z3.Not(var.bounded))
        elif spec is not None and spec.type == "enum":
            var.choices = {v: z3.Bool(f"d:{name}={v}") for v in spec.values}
            self.constraints += [z3.Implies(var.known, z3.PbEq([(c, 1) for c in var.choices.values()], 1)),
                                 z3.Not(var.bounded)]
        else:  # a number, a score item or a score total: a known value carries lo = hi = v
            var.value = z3.Real(f"d:{name}")
            self.constraints.append(z3.Implies(var.known, z3.And(var.bounded, var.lo == var.value,
                                                                 var.hi == var.value)))
        self.constraints.append(z3.Implies(var.na, z3.Not(var.bounded)))
        return var

    # --- literal tests, as engine/compile/patterns.py writes them ----------------------------
    def input_test(self, atom: Atom, state: str) -> Formula_:
        var = self.inputs[atom.fact]
        if atom.op in ("known", "present"):
            return var.known if state == T else z3.Not(var.known)
        if state == U:
            return z3.Not(var.known)
        if atom.op in _OPS:
            test = _OPS[atom.op](var.value, _threshold(atom))
        else:
            test = z3.Or([self._equals(var, v) for v in (atom.value if atom.op == "in" else (atom.value,))])
        return z3.And(var.known, test if state == T else z3.Not(test))

    def derived_test(self, atom: Atom, state: str) -> Formula_:
        fact = self.facts[atom.fact]
        if atom.op in ("known", "present"):
            if state == T:
                return fact.known
            return fact.undetermined if atom.op == "present" else z3.And(fact.exists, z3.Not(fact.known))
        if atom.op in _OPS:
            op, c = _OPS[atom.op], _threshold(atom)
            true_bound, false_bound = getattr(fact, _TRUE_BOUND[atom.op]), getattr(fact, _FALSE_BOUND[atom.op])
            if state == T:
                return z3.And(fact.bounded, op(true_bound, c))
            if state == F:
                return z3.Or(z3.And(fact.bounded, z3.Not(op(false_bound, c))), fact.na)
            return z3.And(fact.undetermined, z3.Or(z3.Not(fact.bounded),
                                                   z3.And(z3.Not(op(true_bound, c)), op(false_bound, c))))
        if state == U:
            return fact.undetermined
        test = z3.Or([self._equals(fact, v) for v in (atom.value if atom.op == "in" else (atom.value,))])
        if state == T:
            return z3.And(fact.known, test)
        return z3.Or(fact.na, z3.And(fact.known, z3.Not(test)))

    @staticmethod
    def _equals(var: InputVar | FactVar, value: Any) -> Formula_:
        if var.choices:
            return var.choices.get(value, z3.BoolVal(False))
        if isinstance(value, bool):
            return var.value == z3.BoolVal(value)
        return var.value == real(value)

    def literal(self, atom: Atom, states: States, derived: bool) -> Formula_:
        test = self.derived_test if derived else self.input_test
        return z3.Or([test(atom, s) for s in sorted(states)])

    def _pattern(self, pattern: Pattern) -> Formula_:
        derived = pattern.fact is not None
        parts = [self.literal(a, s, derived) for a, s in pattern.literals]
        if derived:
            parts.insert(0, self.facts[pattern.fact].exists if pattern.fact in self.facts else z3.BoolVal(False))
        return z3.And(parts) if parts else z3.BoolVal(True)

    def _matches(self, action: Action) -> Formula_:
        parts = [self._pattern(p) for p in action.patterns]
        parts += [self.facts[item].exists for _, item in action.item_patterns]
        return z3.And(parts) if parts else z3.BoolVal(True)

    # --- outcomes ------------------------------------------------------------------------
    def _outcome(self, action: Action, fact: FactVar) -> Formula_:
        kind = action.kind
        if kind in (ActionKind.DERIVE, ActionKind.ITEM):
            return z3.And(fact.known, self._is_value(fact, self._value(action.value, action)))
        if kind in (ActionKind.DERIVE_UNDETERMINED, ActionKind.ITEM_UNDETERMINED, ActionKind.SCORE_UNDETERMINED):
            if action.bounds is None:
                return z3.And(fact.undetermined, z3.Not(fact.bounded))
            return z3.And(fact.undetermined, fact.bounded, fact.lo == real(action.bounds[0]),
                          fact.hi == real(action.bounds[1]))
        if kind in (ActionKind.DERIVE_NOT_APPLICABLE, ActionKind.SCORE_NOT_APPLICABLE):
            return fact.na
        assert kind is ActionKind.SCORE, kind
        items = [self.facts[item] for _, item in action.item_patterns]
        lo, hi = z3.Sum([i.lo for i in items]), z3.Sum([i.hi for i in items])
        return z3.And(fact.bounded, fact.lo == lo, fact.hi == hi,
                      z3.If(lo == hi, z3.And(fact.known, fact.value == lo), fact.undetermined))

    def _is_value(self, fact: FactVar, value: Any) -> Formula_:
        if fact.choices:
            return self._equals(fact, value)
        if isinstance(value, bool):
            return fact.value == z3.BoolVal(value)
        return fact.value == (value if z3.is_expr(value) else real(value))

    def _value(self, value: Any, action: Action) -> Any:
        """A derived value as actions.py computes it: constants, operands, exact arithmetic."""
        if isinstance(value, Operand):
            return self._operand(value, action)
        if isinstance(value, Formula):
            left, right = (self._value(a, action) if isinstance(a, (Operand, Formula)) else real(a) for a in value.args)
            if value.op == "divide":
                self.constraints.append(z3.Implies(self._matches(action), right != 0))  # the engine refuses it
            return value.combine(left, right)
        return value

    def _operand(self, op: Operand, action: Action) -> Any:
        """Engine: the matched derived fact's value if the rule matched one, else the input, else
        the default (engine/run/actions.py `_read`)."""
        fallback = real(op.default) if op.default is not None else None
        if op.fact in self.inputs:
            var = self.inputs[op.fact]
            fallback = var.value if fallback is None else z3.If(var.known, var.value, fallback)
        if any(p.fact == op.fact for p in action.patterns):
            fact = self.facts[op.fact]
            return fact.value if fallback is None else z3.If(fact.known, fact.value, fallback)
        return fallback

    # --- questions the search asks -------------------------------------------------------
    def code_fires(self, code: str) -> Formula_:
        """`code` is in the result: one of its rules fired and the guideline applies."""
        return z3.And(z3.Or([self.fires[r] for r, a in self.program.actions.items()
                             if a.kind is ActionKind.RECOMMEND and a.rule is not None and a.rule.recommend == code]),
                      z3.Not(self.outside_population))

    def rule_fires(self, rule_id: str) -> Formula_:
        return z3.Or([self.fires[r] for r, a in self.program.actions.items()
                      if a.kind in (ActionKind.RECOMMEND, ActionKind.DERIVE, ActionKind.ITEM)
                      and a.rule is not None and a.rule.id == rule_id])

    def truth(self, cond: Condition, state: str) -> Formula_:
        """Kleene truth of a resolved condition (an expectation's), from the same literal tests."""
        if isinstance(cond, Atom):
            assert cond.binding is not None
            derived = cond.binding.derived
            possible = {"known": (T, F), "present": (T, U)}.get(cond.op, (T, F, U))
            if state not in possible:
                return z3.BoolVal(False)
            return (self.derived_test if derived else self.input_test)(cond, state)
        if isinstance(cond, Not):
            return self.truth(cond.item, {T: F, F: T, U: U}[state])
        if isinstance(cond, NoneKnown):
            some_true = z3.Or([self.truth(c, T) for c in cond.items])
            return {T: z3.Not(some_true), F: some_true, U: z3.BoolVal(False)}[state]
        trues = [self.truth(c, T) for c in cond.items]
        falses = [self.truth(c, F) for c in cond.items]
        t, f = (z3.And(trues), z3.Or(falses)) if isinstance(cond, All) else (z3.Or(trues), z3.And(falses))
        assert isinstance(cond, (All, Any_))
        return {T: t, F: f, U: z3.And(z3.Not(t), z3.Not(f))}[state]
