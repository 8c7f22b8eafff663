"""durable_rules hazards (../shared/notes/durable-rules.md): each guard and a test that needs it."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.run import durable as _durable
from engine.run.actions import Evaluation

FIXTURE = Path(__file__).parent / "fixtures" / "kleene"
VALUES: dict[str, list[Any]] = {"a": [True, False, None], "b": [True, False, None], "c": [True, False, None],
                                "x": [2, 7, None]}


def _and(*v: str) -> str:
    return "f" if "f" in v else "u" if "u" in v else "t"


def _or(*v: str) -> str:
    return "t" if "t" in v else "u" if "u" in v else "f"


def _not(v: str) -> str:
    return {"t": "f", "f": "t", "u": "u"}[v]


def reference(p: dict[str, Any]) -> dict[str, str]:
    """The fixture guideline evaluated by hand in three-valued logic."""
    tv = {k: "u" if p.get(k) is None else "t" if p[k] is True else "f" for k in "abc"}
    x_lt_5 = "u" if p.get("x") is None else "t" if p["x"] < 5 else "f"
    d = _or(tv["a"], _and(tv["b"], x_lt_5))
    e_low = x_lt_5
    return {
        "r-and-not": _and(d, _not(tv["c"])),
        "r-none-known": "f" if "t" in (tv["a"], tv["c"]) else "t",
        "r-any-enum": _or(e_low, tv["c"]),
        "r-not-all": _not(_and(tv["a"], tv["b"])),
        "r-known-false": _and("t" if p.get("x") is not None else "f", _not(d)),
        "r-x-unknown": _and("t" if p.get("x") is None else "f", tv["a"]),
    }


@pytest.fixture(scope="module")
def kleene() -> engine.Guideline:
    return engine.load(FIXTURE)


PATIENTS = [{k: v for k, v in zip(VALUES, combo) if v is not None} for combo in itertools.product(*VALUES.values())]


@pytest.mark.parametrize("patient", PATIENTS, ids=[str(p) for p in PATIENTS])
def test_durable_rules_agrees_with_three_valued_logic(kleene: engine.Guideline, patient: dict[str, Any]) -> None:
    result = kleene.evaluate(patient)
    undetermined = {t for m in result.missing for t in m.needed_for}
    for code, truth in reference(patient).items():
        assert (code in result.codes) == (truth == "t"), (code, truth)
        assert (code in undetermined) == (truth == "u"), (code, truth, result.missing)


def test_input_order_does_not_matter(kleene: engine.Guideline) -> None:
    """Absence rules misfire on fact order in durable_rules; shuffled input must not change anything."""
    rng = random.Random(7)
    for patient in PATIENTS:
        expected = kleene.evaluate(patient).to_dict()
        for _ in range(3):
            items = list(patient.items())
            rng.shuffle(items)
            assert kleene.evaluate(dict(items)).to_dict() == expected


def test_no_state_leaks_between_patients(guideline: engine.Guideline) -> None:
    """One fixed state id, deleted after each evaluation: the next patient starts empty."""
    febrile = {"anc": 0.2, "temperature": 39.0}
    empty = guideline.evaluate({})
    assert "fn-empirical-iv-antibiotics" in guideline.evaluate(febrile).codes
    assert guideline.evaluate({}).to_dict() == empty.to_dict()


@pytest.mark.parametrize("name", ["sid", "id", "t"])
def test_patient_cannot_set_engine_ids(guideline: engine.Guideline, name: str) -> None:
    """A patient-supplied state id would reach durable_rules' 32-bit id hash; names are checked first."""
    with pytest.raises(engine.InputFactsError, match=name):
        guideline.evaluate({name: "patient-332789", "anc": 0.2})


def test_an_action_that_raises_voids_the_evaluation(kleene: engine.Guideline, monkeypatch: pytest.MonkeyPatch) -> None:
    """durable_rules' Host swallows action exceptions; here one must fail the evaluation loudly."""
    before = kleene.evaluate({"a": True, "c": False}).to_dict()
    assert before["recommendations"]
    original = Evaluation.handle

    def failing(self: Evaluation, rule_name: str, matched: Any, emit: Any) -> None:
        if self.program.actions[rule_name].kind == "recommend":
            raise ValueError("boom")
        original(self, rule_name, matched, emit)

    monkeypatch.setattr(Evaluation, "handle", failing)
    with pytest.raises(engine.RuleEngineError, match="boom"):
        kleene.evaluate({"a": True, "c": False})
    monkeypatch.setattr(Evaluation, "handle", original)
    # ... and the session it left behind is gone: the next evaluation is whole and correct.
    assert kleene.evaluate({"a": True, "c": False}).to_dict() == before


def test_a_session_where_no_recommendation_fires_is_deleted_safely(guideline: engine.Guideline) -> None:
    """delete_state segfaults where no action ran: the `start` rule always fires."""
    assert any(a.kind == "start" for a in guideline.program.actions.values())
    for _ in range(3):
        assert guideline.evaluate({}).recommendations == ()


def test_tiny_floats_are_not_written_with_exponents(guideline: engine.Guideline) -> None:
    """json.dumps writes 1e-05, which durable_rules rejects (error 204)."""
    assert _durable._encode(1e-05) == "0.00001"
    assert _durable._encode({"x": [1e16, 2.5]}) == '{"x":[10000000000000000.0,2.5]}'
    result = guideline.evaluate({"anc": 1e-05})
    assert result.derived["profound_neutropenia"] is True


def test_a_fact_asserted_twice_is_an_error() -> None:
    ruleset = _durable.Ruleset({"start": {"all": [{"m_0": {"t": "$input"}}]},
                                "seen": {"all": [{"m_0": {"t": "d"}}]}})

    def twice(name: str, matched: Any, emit: Any) -> None:
        if name == "start":
            emit({"id": "same", "t": "d"})
            emit({"id": "same", "t": "d"})

    with pytest.raises(engine.RuleEngineError, match="twice"):
        ruleset.run({"t": "$input"}, twice)
    ruleset.close()


def test_oversized_rulesets_are_refused_before_durable_rules_hangs() -> None:
    definition = {f"r{i}": {"all": [{"m_0": {"t": f"f{i}"}}]} for i in range(_durable.MAX_RULES + 1)}
    with pytest.raises(engine.RuleEngineError, match="hang"):
        _durable.Ruleset(definition)


def test_more_evaluations_than_durable_rules_has_sessions(kleene: engine.Guideline) -> None:
    """durable_rules allows 1,024 live sessions; every evaluation must give its session back."""
    # b and c unknown; a is true exactly when x is odd (Kleene: d = a or (b and x < 5)).
    low_a_false = ["r-any-enum", "r-none-known", "r-not-all"]      # x < 5 and not a
    high_a_false = ["r-known-false", "r-none-known", "r-not-all"]  # x >= 5 and not a: d is false
    expected = [low_a_false, ["r-any-enum"], low_a_false, ["r-any-enum"], low_a_false,
                [], high_a_false, [], high_a_false, []]
    for i in range(1100):
        assert kleene.evaluate({"a": bool(i % 2), "x": i % 10}).codes == expected[i % 10], i


def test_two_guidelines_do_not_share_rulesets(guideline: engine.Guideline, kleene: engine.Guideline) -> None:
    assert guideline._ruleset.name != kleene._ruleset.name
    assert kleene.evaluate({"a": True, "c": False}).codes == ["r-and-not", "r-x-unknown"]
    assert "fn-empirical-iv-antibiotics" in guideline.evaluate({"anc": 0.2, "temperature": 39.0}).codes


def test_a_match_stack_overflow_is_named_and_voids_only_that_evaluation() -> None:
    """durable_rules' events.c keeps at most 64 pending matches per asserted fact (error 303)."""
    definition = {"r0": {"all": [{"m_0": {"t": "$input"}}]}}
    for i in range(65):
        definition[f"r{i + 1}"] = {"all": [{"m_0": {"$and": [{"t": "$input"}, {"$lt": {"anc": 1.0 + i}}]}}]}
    ruleset = _durable.Ruleset(definition)
    try:
        with pytest.raises(engine.RuleEngineError, match=r"match stack \(64 entries\) overflowed.*error 303"):
            ruleset.run({"t": "$input", "anc": 0.0}, lambda name, matched, emit: None)
        assert ruleset.run({"t": "$input", "anc": 100.0}, lambda name, matched, emit: None) == 1  # next one clean
    finally:
        ruleset.close()


# --- one session reused for every patient (engine/run/durable.py) -------------------------------

FEBRILE = {"anc": 0.2, "temperature": 39.0, "age": 50, "on_tki": True, "central_venous_catheter": True}
AFEBRILE = {"anc": 2.0, "temperature": 36.5, "age": 70}


def _stored(guideline: engine.Guideline) -> list[Any]:
    """The facts durable_rules' C core still holds for the engine's one state id."""
    import json

    try:
        return json.loads(_durable._core.get_facts(guideline._ruleset._handle, _durable.STATE_ID))
    except Exception as exc:  # error 309: no session at all (it was deleted), so no fact either
        assert str(exc).endswith("309"), exc
        return []


def test_a_reused_session_keeps_no_fact_of_the_previous_patient(guideline: engine.Guideline) -> None:
    """A, B, A: A's answers are the same both times, and nothing of B remains in the session."""
    fresh = guideline._ruleset.fresh_sessions
    first = guideline.evaluate(AFEBRILE).to_dict()
    assert _stored(guideline) == []
    febrile = guideline.evaluate(FEBRILE)
    assert "fn-empirical-iv-antibiotics" in febrile.codes and _stored(guideline) == []
    assert guideline.evaluate(AFEBRILE).to_dict() == first
    assert guideline.evaluate({}).recommendations == ()  # B's derived facts would fire codes here
    assert guideline._ruleset.fresh_sessions == fresh, "the session was not reused"


def test_facts_left_after_retraction_fall_back_to_a_fresh_session(guideline: engine.Guideline,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A retraction that reports success but leaves the fact (or any doubt) must not reach the next patient."""
    expected = guideline.evaluate(AFEBRILE).to_dict()
    monkeypatch.setattr(_durable._core, "retract_fact", lambda handle, text: (0, 1))  # retracts nothing
    fresh = guideline._ruleset.fresh_sessions
    assert "fn-empirical-iv-antibiotics" in guideline.evaluate(FEBRILE).codes
    assert guideline._ruleset.fresh_sessions == fresh + 1 and _stored(guideline) == []
    assert guideline.evaluate(AFEBRILE).to_dict() == expected


def test_an_unexpected_retraction_code_falls_back_to_a_fresh_session(guideline: engine.Guideline,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    expected = guideline.evaluate(AFEBRILE).to_dict()
    retract = _durable._core.retract_fact
    monkeypatch.setattr(_durable._core, "retract_fact", lambda handle, text: (1, retract(handle, text)[1]))
    fresh = guideline._ruleset.fresh_sessions
    guideline.evaluate(FEBRILE)
    assert guideline._ruleset.fresh_sessions == fresh + 1
    monkeypatch.setattr(_durable._core, "retract_fact", retract)
    assert guideline.evaluate(AFEBRILE).to_dict() == expected and _stored(guideline) == []


def test_an_action_that_raises_midway_leaves_nothing_for_the_next_patient(guideline: engine.Guideline,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived facts were asserted before the failure: the session is deleted, not retracted."""
    expected = guideline.evaluate(AFEBRILE).to_dict()
    original = Evaluation.handle

    def failing(self: Evaluation, rule_name: str, matched: Any, emit: Any) -> None:
        original(self, rule_name, matched, emit)
        if len(self.resolved) >= 5:  # midway through the chain
            raise ValueError("boom")

    monkeypatch.setattr(Evaluation, "handle", failing)
    fresh = guideline._ruleset.fresh_sessions
    with pytest.raises(engine.RuleEngineError, match="boom"):
        guideline.evaluate(FEBRILE)
    assert guideline._ruleset.fresh_sessions == fresh + 1 and _stored(guideline) == []
    monkeypatch.setattr(Evaluation, "handle", original)
    assert guideline.evaluate(AFEBRILE).to_dict() == expected


def test_two_threads_on_one_reused_session_give_the_sequential_answers(guideline: engine.Guideline) -> None:
    """The C core has one session per ruleset: one evaluation at a time (the lock), nothing shared."""
    from concurrent.futures import ThreadPoolExecutor

    patients = [FEBRILE, AFEBRILE, {}, {"anc": 0.05, "temperature": 38.5, "age": 30}, {"age": 4, "anc": 0.3}] * 20
    expected = [guideline.evaluate(p).to_dict() for p in patients]
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda p: guideline.evaluate(p).to_dict(), patients)) == expected
