"""Stage: resolve. Bind every fact mention of checked content to its meaning, once.

After the schema and semantic checks, each condition atom and formula operand is bound to the
fact it reads (`Content.fact_read`: derived or input), and each threshold is converted to the
fact's canonical unit. The compiler, explanations, text, render, diff and diagram all read this
resolved content; none of them looks up a fact name or converts a threshold again, so a
threshold written `{fact: anc, lt: 500, unit: /uL}` is 0.5 ×10⁹/L in every product.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from engine.errors import Problem
from engine.model.content import (
    Atom,
    Binding,
    Condition,
    Content,
    Formula,
    Not,
    Operand,
    Rule,
    Score,
    ScoreItem,
    ScoreOption,
)
from engine.model.units import exact, to_float
from engine.model.vocabulary import COMPARISONS


class _Resolver:
    def __init__(self, content: Content):
        self.content = content
        self.problems: list[Problem] = []

    def atom(self, atom: Atom, deriving: str | None) -> Atom:
        spec = self.content.fact_read(atom.fact, deriving)
        if spec is None:  # the semantic stage reported it; nothing to bind
            return atom
        derived = spec.derived
        if atom.op not in COMPARISONS:
            return replace(atom, binding=Binding(spec, derived))
        units = self.content.units_of(atom.fact) or spec
        canonical_unit = units.unit
        written = atom.unit
        value: Any = atom.value
        threshold = exact(value)
        shown_as: tuple[Any, str] | None = None
        if written is not None and written != canonical_unit:
            conversion = units.conversion(written)
            if conversion is None:  # reported by the semantic stage (unit-mismatch)
                return atom
            threshold = (threshold + conversion.add) * conversion.multiply
            value = to_float(threshold)
            shown_as = (atom.value, written)
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(atom.where.problem("bad-threshold", f"'{atom.fact}' threshold {value!r} is not "
                                                    "a finite number"))
            return atom
        return replace(atom, value=value, unit=canonical_unit,
                       binding=Binding(spec, derived, threshold, shown_as))

    def condition(self, cond: Condition, deriving: str | None) -> Condition:
        if isinstance(cond, Atom):
            return self.atom(cond, deriving)
        if isinstance(cond, Not):
            return Not(self.condition(cond.item, deriving))
        items = tuple(self.condition(c, deriving) for c in cond.items)
        return replace(cond, items=items)

    def value(self, value: Any, deriving: str | None) -> Any:
        if isinstance(value, Operand):
            spec = self.content.fact_read(value.fact, deriving)
            return replace(value, binding=Binding(spec, spec.derived)) if spec is not None else value
        if isinstance(value, Formula):
            return Formula(value.op, tuple(self.value(arg, deriving) for arg in value.args))
        return value

    def rule(self, rule: Rule) -> Rule:
        return replace(rule, when=self.condition(rule.when, rule.derive),
                       value=self.value(rule.value, rule.derive))

    def score(self, score: Score) -> Score:
        items = tuple(ScoreItem(item.id, item.title, tuple(ScoreOption(opt.points, self.condition(opt.when, None))
                                                           for opt in item.options))
                      for item in score.items)
        return replace(score, applies_when=self.condition(score.applies_when, None), items=items)


def resolve(content: Content) -> tuple[Content, list[Problem]]:
    """(the resolved content, every problem found while binding it)."""
    resolver = _Resolver(content)
    population = content.population
    if population is not None:  # read as a rule's condition is, outside any derivation
        population = replace(population, when=resolver.condition(population.when, None))
    resolved = replace(content, rules=tuple(resolver.rule(r) for r in content.rules),
                       scores=tuple(resolver.score(s) for s in content.scores), population=population,
                       resolved=True,
                       guidance_expected=tuple(replace(e, when=resolver.condition(e.when, None))
                                               for e in content.guidance_expected))
    return resolved, resolver.problems


def resolve_atom(content: Content, atom: Atom, deriving: str | None) -> tuple[Atom, list[Problem]]:
    """One atom as written (threshold in its own unit) bound as the resolve stage binds it, for a
    product that rewrites a single test of resolved content (mutation testing moves a threshold in
    the unit its editor wrote it in)."""
    resolver = _Resolver(content)
    return resolver.atom(atom, deriving), resolver.problems
