"""The compile <-> run interface: how facts look inside durable_rules and what each compiled
rule asks the runtime to do. The compiler and the runtime both import these names; neither
spells the strings itself.

Facts inside durable_rules (every fact has `t`, its type):
- the patient: ONE fact `{t: INPUT, <input name>: value, ...}`; an absent property is an
  unknown value. One fact means input order cannot matter and nothing arrives "late".
- each derived fact (and each score item): `{t: <name>, v: value, lo: n, hi: n}` when known
  (lo/hi for numbers), `{t: <name>, u: 1[, lo, hi]}` when undetermined (bounds while they are
  still limited, as for a score with missing items), `{t: <name>, na: 1}` when it does not apply.
Every derived fact is resolved to exactly one of these three by rules that test positive
literals only (engine/compile/kleene.py), so no rule depends on the absence of a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from engine.compile.kleene import States, U
from engine.model.content import Atom, Rule, Score, ScoreItem

INPUT = "$input"      # the type of the patient fact
TYPE = "t"            # every fact's type property
VALUE = "v"           # a known value
LOW, HIGH = "lo", "hi"  # bounds of a number, known or not
UNDETERMINED = "u"    # present (= 1) on an undetermined fact
NOT_APPLICABLE = "na"  # present (= 1) on a fact that does not apply


class ActionKind(str, Enum):
    """What the runtime does when a compiled rule fires."""

    START = "start"                        # the always-firing rule (durable_rules hazard: delete_state)
    RECOMMEND = "recommend"                # a recommendation's condition is true
    RECOMMEND_UNDETERMINED = "recommend-u"  # ... undetermined: record the missing facts
    RECOMMEND_FALSE = "recommend-f"        # ... known false: only in the why-not program (compile_why_not)
    DERIVE = "derive"                      # a derived fact has a value
    DERIVE_UNDETERMINED = "derive-u"
    DERIVE_NOT_APPLICABLE = "derive-na"
    ITEM = "item"                          # a score item has its points
    ITEM_UNDETERMINED = "item-u"
    SCORE = "score"                        # every item is resolved: total the score
    SCORE_UNDETERMINED = "score-u"
    SCORE_NOT_APPLICABLE = "score-na"
    POPULATION = "population"              # the patient is known to be in the guideline's population
    POPULATION_UNDETERMINED = "population-u"  # ... not known: record the facts it waits for
    POPULATION_NOT_MET = "population-f"    # ... known not to be: no recommendation (contract section 7)


# The status each population outcome gives the result's `applicability` (contract section 7).
POPULATION_STATUS = {ActionKind.POPULATION: "applies", ActionKind.POPULATION_UNDETERMINED: "undetermined",
                     ActionKind.POPULATION_NOT_MET: "does-not-apply"}
APPLICABILITY = "applicability"  # the target of population actions, and its name in `missing.needed_for`


def item_fact(score: Score, item: ScoreItem) -> str:
    """The derived fact holding one score item's points (internal: never in a result)."""
    return f"{score.fact}#{item.id}"


def item_label(name: str) -> str:
    """The item id of an item fact, the name itself for any other fact."""
    return name.split("#")[-1]



def known(value: Any) -> dict[str, Any]:
    """The fields of a known derived fact."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {VALUE: value, LOW: value, HIGH: value}
    return {VALUE: value}


def undetermined(bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    fact: dict[str, Any] = {UNDETERMINED: 1}
    if bounds:
        fact.update({LOW: bounds[0], HIGH: bounds[1]})
    return fact


def not_applicable() -> dict[str, Any]:
    return {NOT_APPLICABLE: 1}


def fact_id(name: str) -> str:
    """The explicit id a derived fact is asserted with (durable_rules hashes content otherwise)."""
    return f"d:{name}"


@dataclass(frozen=True)
class Pattern:
    """One fact pattern of a compiled rule: the patient fact (fact=None) or a derived fact, with
    the literals (atom, accepted truth states) it tests."""

    name: str
    fact: str | None
    literals: tuple[tuple[Atom, States], ...] = ()


@dataclass(frozen=True)
class Action:
    """What to do when a compiled rule fires."""

    kind: ActionKind
    target: str          # rule id, fact name or score fact
    patterns: tuple[Pattern, ...] = ()
    rule: Rule | None = None
    score: Score | None = None
    item: ScoreItem | None = None
    value: Any = None
    bounds: tuple[float, float] | None = None
    item_patterns: tuple[tuple[str, str], ...] = ()  # (pattern name, item fact) for a score total
    # Derived from `patterns` here, once, so no firing recomputes them (engine/run/actions.py):
    # the input facts whose absence the branch requires, and the derived facts it requires
    # undetermined. Only literals that require "undetermined" name missing facts: an absent fact
    # that merely satisfies "not known false" sits beside a part that is already decided.
    waits_inputs: frozenset[str] = field(init=False)
    waits_via: frozenset[str] = field(init=False)
    # The derived facts the branch matched, in pattern order: what its explanation depends on.
    deps: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        undetermined = frozenset(U)
        object.__setattr__(self, "deps", tuple(dict.fromkeys(p.fact for p in self.patterns if p.fact is not None)))
        object.__setattr__(self, "waits_inputs", frozenset(
            atom.fact for p in self.patterns if p.fact is None for atom, states in p.literals
            if states == undetermined))
        object.__setattr__(self, "waits_via", frozenset(
            p.fact for p in self.patterns if p.fact is not None
            and any(states == undetermined for _, states in p.literals)))


@dataclass(frozen=True)
class Program:
    """A compiled guideline: the durable_rules ruleset definition and the action of each rule."""

    definition: dict[str, Any]
    actions: dict[str, Action]
    item_facts: dict[str, tuple[Score, ScoreItem]] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    # What the runtime derives from this program once and reuses for every patient (the dispatch
    # table and the derived facts rules read, engine/run/actions.py; the decided sets of targets,
    # engine/run/ranking.py): filled on first use, never part of the program's meaning.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
