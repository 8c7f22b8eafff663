"""Whom the guideline applies to, for one patient (contract section 7), from the population rules' firings.

durable_rules matched the population's condition (the POPULATION* actions of
engine/compile/program.py); this module only words what they recorded and applies the outcome to
the result: a patient known to be outside the population gets no recommendation, and the facts
that only recommendations wait for are moot. Derived facts are still reported: they describe the
patient, whoever the guideline is for.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.compile.kleene import States, T
from engine.errors import RuleEngineError
from engine.model.content import Atom
from engine.model.vocabulary import NEGATED_WORDS, WORDS
from engine.run.actions import Evaluation
from engine.run.explain import describe, show
from engine.run.ranking import rank
from engine.run.result import Applicability, MissingFact, Result


def in_words(atom: Atom, states: States, actual: Any, unit: str | None) -> str:
    """A decided part of the population in clinical words: 'age 4 years is below 18 years'."""
    if atom.op in WORDS and actual is not None:
        words = WORDS[atom.op] if T in states else NEGATED_WORDS[atom.op]
        return f"{atom.fact} {show(actual, unit)} {words} {show(atom.value, atom.unit or unit)}"
    return describe(atom, states, actual, unit)  # "age is not given", "pregnant is false", ...


def applicability(ev: Evaluation) -> Applicability:
    """The patient's status against the guideline's population; everyone when it declares none."""
    population = ev.content.population
    if population is None:
        return Applicability()
    if ev.population_status is None:  # every outcome of the condition has a compiled rule
        raise RuleEngineError("the population's condition was neither true, false nor undetermined")
    because = tuple(dict.fromkeys(in_words(atom, states, actual, ev.unit(atom.fact))
                                  for atom, states, actual in ev.population_found))
    return Applicability(ev.population_status, population.description, because)


def missing_outside_population(ev: Evaluation, missing: tuple[MissingFact, ...]) -> tuple[MissingFact, ...]:
    """The missing facts that still decide a derived fact, ranked again (the rest waited for
    recommendations only, which a patient outside the population does not get)."""
    kept = {m.fact: [t for t in m.needed_for if t in ev.content.derived] for m in missing}
    return rank({fact: targets for fact, targets in kept.items() if targets}, ev.content,
                ev.program.cache.setdefault("decides", {}))


def applied(ev: Evaluation, result: Result) -> Result:
    """`result` with its `applicability`; outside the population, with no recommendation."""
    status = applicability(ev)
    if status.status != "does-not-apply":
        return dataclasses.replace(result, applicability=status)
    recommending = {rule.id for rule in ev.content.rules if rule.recommend}
    return dataclasses.replace(
        result, applicability=status, recommendations=(), missing=missing_outside_population(ev, result.missing),
        rules_fired=frozenset(result.rules_fired - recommending))

