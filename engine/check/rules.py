"""Semantic checks of rules: ids, citations, recommendation codes, derived targets and values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from engine.check.conditions import unknown_fact_message, value_problems
from engine.errors import Problem, did_you_mean
from engine.model.content import (
    Content,
    FactSpec,
    Formula,
    Operand,
    Rule,
    Where,
    operands,
)


def _located(content: Content) -> Iterator[tuple[Rule, Where]]:
    """Every rule with its location (built rules always have one)."""
    for rule in content.rules:
        assert rule.where is not None
        yield rule, rule.where


def _derivations(content: Content) -> Iterator[tuple[Rule, Where, FactSpec]]:
    """Rules deriving a declared derived fact, with that fact (unknown targets are derive_targets')."""
    for rule, where in _located(content):
        if rule.derive is not None and rule.derive in content.derived:
            yield rule, where, content.derived[rule.derive]


def duplicate_rule_ids(content: Content) -> Iterator[Problem]:
    """Check: rule ids are unique across all rule files (each rule using a taken id is reported)."""
    counts = Counter(rule.id for rule in content.rules)
    for rule, where in _located(content):
        if counts[rule.id] > 1:
            yield where.problem("duplicate-id", f"rule id '{rule.id}' is used by {counts[rule.id]} rules", "id")


def rule_citations(content: Content) -> Iterator[Problem]:
    """Check: a rule cites only references guideline.yaml defines."""
    for rule, where in _located(content):
        for i, ref in enumerate(rule.citations):
            if ref not in content.references:
                yield where.problem("unknown-reference", f"rule '{rule.id}' cites reference {ref}, which "
                                    f"guideline.yaml does not define", "citations", i)


def population_citations(content: Content) -> Iterator[Problem]:
    """Check: the population cites only references guideline.yaml defines."""
    population = content.population
    if population is None or population.where is None:
        return
    for i, ref in enumerate(population.citations):
        if ref not in content.references:
            yield population.where.problem("unknown-reference", f"the population cites reference {ref}, which "
                                           f"guideline.yaml does not define", "citations", i)


def rule_codes(content: Content) -> Iterator[Problem]:
    """Check: a rule recommends only codes of the catalogue."""
    for rule, where in _located(content):
        if rule.recommend is not None and rule.recommend not in content.catalogue:
            yield where.problem("unknown-code", f"unknown recommendation code '{rule.recommend}'"
                                f"{did_you_mean(rule.recommend, content.catalogue)}", "then", "recommend")


def derive_targets(content: Content) -> Iterator[Problem]:
    """Check: a rule derives a fact declared under derived:, and never a range (only scores make ranges)."""
    for rule, where in _located(content):
        if rule.derive is None:
            continue
        spec = content.derived.get(rule.derive)
        if spec is None:
            hint = " (it is an input fact; declare it under derived: too)" if rule.derive in content.facts \
                else did_you_mean(rule.derive, content.derived)
            yield where.problem("unknown-fact", f"'{rule.derive}' is not a derived fact of facts.yaml{hint}",
                                "then", "derive")
        elif spec.type == "range":
            yield where.problem("type-mismatch", f"'{spec.name}' is a range; only a score produces it", "then")


def derived_values(content: Content) -> Iterator[Problem]:
    """Check: the value a rule derives has the type of its target (a formula gives a number)."""
    for rule, where, spec in _derivations(content):
        value = rule.value
        if isinstance(value, (Operand, Formula)):
            # A bare operand copies a fact, so it may have the target's type, whatever that is.
            copied = content.fact_read(value.fact, rule.derive) if isinstance(value, Operand) else None
            if spec.type != "number" and not (copied is not None and copied.type == spec.type):
                yield where.problem("type-mismatch", f"'{spec.name}' is {spec.type}; a formula gives a number",
                                    "then", "value")
        elif spec.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                yield where.problem("type-mismatch", f"'{spec.name}' is a number, not {value!r}", "then", "value")
        else:
            yield from value_problems(spec, value, Where(where.doc, where.path + ("then", "value")))


def formula_operands(content: Content) -> Iterator[Problem]:
    """Check: each operand of a derived value reads a known fact, and a formula's operands are numbers."""
    for rule, _, _ in _derivations(content):
        for op in operands(rule.value):
            ospec = content.fact_read(op.fact, rule.derive)
            if ospec is None:
                yield op.where.problem("unknown-fact", unknown_fact_message(content, op.fact, rule.derive), "fact")
            elif ospec.type != "number" and isinstance(rule.value, Formula):
                yield op.where.problem("type-mismatch", f"'{op.fact}' is {ospec.type}; formulas need numbers")
