"""The compile stage: resolved conditions -> durable_rules patterns and actions (engine/compile/)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import engine
from engine.compile import encoding as enc
from engine.compile.encoding import ActionKind, Pattern
from engine.compile.kleene import F, T, U
from engine.compile.patterns import branch_patterns, durable_rule
from engine.compile.program import compile_content
from engine.model.content import Atom, Binding, FactSpec, Where
from engine.model.source import Document

FIXTURE = Path(__file__).parent / "fixtures" / "kleene"
_WHERE = Where(Document("test.yaml", None), ())
_NUMBER = FactSpec("x", "number", False, "x", unit="1")
_DERIVED = FactSpec("d", "number", True, "d", unit="1")


def atom(fact: str, op: str, value: object, derived: bool = False) -> Atom:
    spec = _DERIVED if derived else _NUMBER
    return Atom(fact, op, value, _WHERE, "1", Binding(spec, derived))


def test_literals_on_the_input_share_one_pattern_on_the_patient_fact() -> None:
    branch = ((atom("x", "lt", 5), frozenset(T)), (atom("y", "ge", 2), frozenset(F)))
    (pattern,) = branch_patterns(branch, frozenset()) or ()
    assert pattern.fact is None and pattern.name == "m_0"
    assert durable_rule((pattern,)) == {"all": [{"m_0": {"$and": [{enc.TYPE: enc.INPUT}, {"$lt": {"x": 5}},
                                                                   {"$lt": {"y": 2}}]}}]}


def test_a_derived_fact_is_its_own_pattern_tested_on_its_bounds() -> None:
    branch = ((atom("d", "lt", 21, derived=True), frozenset(T)), (atom("x", "ge", 1), frozenset(T)))
    patterns = branch_patterns(branch, frozenset({"d"}))
    assert patterns is not None and [p.fact for p in patterns] == [None, "d"]
    rule = durable_rule(patterns)
    # true when the highest possible value is below the threshold; false when the lowest is not
    assert rule["all"][1] == {"m_1": {"$and": [{enc.TYPE: "d"}, {"$lt": {enc.HIGH: 21}}]}}
    false = durable_rule((Pattern("m_0", "d", ((atom("d", "lt", 21, derived=True), frozenset(F)),)),))
    assert false["all"][0]["m_0"]["$and"][1] == {"$or": [{"$gte": {enc.LOW: 21}}, {enc.NOT_APPLICABLE: 1}]}


def test_literals_an_absent_input_decides_fold_into_one_and_contradictions_drop_the_branch() -> None:
    undetermined_lt, not_true_ge = (atom("x", "lt", 5), frozenset(U)), (atom("x", "ge", 9), frozenset({F, U}))
    (pattern,) = branch_patterns((undetermined_lt, not_true_ge), frozenset()) or ()
    assert [(a.op, states) for a, states in pattern.literals] == [("present", frozenset(U))]
    assert pattern.literals[0][0].binding is not None  # the folded atom still knows its fact
    needs_value = (atom("x", "lt", 5), frozenset(T))
    assert branch_patterns((undetermined_lt, needs_value), frozenset()) is None


def test_an_unconditional_branch_is_anchored_on_the_patient() -> None:
    assert branch_patterns((), frozenset()) == (Pattern("m_0", None, ()),)


def test_the_program_starts_with_the_always_firing_rule_and_uses_every_kind_a_guideline_needs() -> None:
    program = engine.load(FIXTURE).program
    first = next(iter(program.actions.values()))
    assert first.kind is ActionKind.START and program.definition["r0"] == {"all": [{"m_0": {enc.TYPE: enc.INPUT}}]}
    kinds = {a.kind for a in program.actions.values()}
    assert {ActionKind.RECOMMEND, ActionKind.RECOMMEND_UNDETERMINED, ActionKind.DERIVE,
            ActionKind.DERIVE_UNDETERMINED, ActionKind.DERIVE_NOT_APPLICABLE} <= kinds
    scores = {a.kind for a in engine.load().program.actions.values()}
    assert {ActionKind.ITEM, ActionKind.ITEM_UNDETERMINED, ActionKind.SCORE, ActionKind.SCORE_UNDETERMINED,
            ActionKind.SCORE_NOT_APPLICABLE} <= scores
    assert set(program.definition) == set(program.actions)


def test_thresholds_reach_durable_rules_in_the_canonical_unit(bundled_copy: Path) -> None:
    from conftest import replace_once

    replace_once(bundled_copy / "rules" / "derived.yaml", "{fact: anc, lt: 0.5, unit: 10*9/L}",
                 "{fact: anc, lt: 500, unit: /uL}")
    assert engine.load(bundled_copy).program.definition == engine.load().program.definition


def test_compiling_unresolved_content_is_refused() -> None:
    from engine.pipeline import analyse

    built = analyse(FIXTURE, until="semantic").content
    assert built is not None and not built.resolved
    with pytest.raises(ValueError, match="resolve stage"):
        compile_content(built)


def test_item_facts_are_named_in_one_place() -> None:
    content = engine.load().content
    score = content.scores[0]
    name = enc.item_fact(score, score.items[0])
    assert enc.item_label(name) == score.items[0].id and enc.item_label("anc") == "anc"
    assert name in engine.load().program.item_facts


def test_the_fact_encoding_round_trips_the_three_outcomes() -> None:
    assert enc.known(0.3) == {enc.VALUE: 0.3, enc.LOW: 0.3, enc.HIGH: 0.3}
    assert enc.known("severe") == {enc.VALUE: "severe"}
    assert enc.known(True) == {enc.VALUE: True}
    assert enc.undetermined() == {enc.UNDETERMINED: 1}
    assert enc.undetermined((22, 24)) == {enc.UNDETERMINED: 1, enc.LOW: 22, enc.HIGH: 24}
    assert enc.not_applicable() == {enc.NOT_APPLICABLE: 1}


def test_folded_absence_is_the_same_pattern_whatever_the_threshold() -> None:
    """Without this, a rule per threshold survives deduplication (230 compiled rules became 232)."""
    below_5 = (atom("x", "lt", 5), frozenset(U))
    below_9 = (atom("x", "lt", 9), frozenset(U))
    resolved_5 = Atom("x", "lt", 5, _WHERE, "1", Binding(_NUMBER, False, exact=Fraction(5)))
    resolved_9 = Atom("x", "lt", 9, _WHERE, "1", Binding(_NUMBER, False, exact=Fraction(9)))
    assert branch_patterns((below_5,), frozenset()) == branch_patterns((below_9,), frozenset())
    assert branch_patterns(((resolved_5, frozenset(U)),), frozenset()) == \
        branch_patterns(((resolved_9, frozenset(U)),), frozenset())
