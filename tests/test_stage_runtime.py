"""The run stage: firings -> resolutions (engine/run/actions.py) -> the result (engine/run/assemble.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine
from engine.compile.encoding import ActionKind
from engine.model.vocabulary import urgencies, urgency_rank
from engine.run.actions import Evaluation
from engine.run.assemble import result
from engine.run.input import check_facts
from engine.run.ranking import sort_key

FIXTURE = Path(__file__).parent / "fixtures" / "kleene"


def _evaluation(guideline: engine.Guideline, facts: dict[str, object]) -> Evaluation:
    canonical, _ = check_facts(guideline.content, facts)
    evaluation = Evaluation(guideline.content, guideline.program, canonical)
    guideline._ruleset.run({"t": "$input", **canonical}, evaluation.handle)
    return evaluation


def test_every_action_kind_has_exactly_one_handler() -> None:
    assert set(Evaluation._HANDLERS) == set(ActionKind)


def test_each_derived_fact_is_resolved_once_to_a_value_unknown_or_not_applicable() -> None:
    g = engine.load(FIXTURE)
    ev = _evaluation(g, {"a": False, "b": True})  # x absent: d and e undetermined
    assert {n: r.state for n, r in ev.resolved.items()} == {"d": "unknown", "e": "unknown"}
    assert ev.missing_inputs["d"] == {"x"} and ev.missing_inputs["e"] == {"x"}
    ev = _evaluation(g, {"a": True, "x": 7})
    assert (ev.resolved["d"].state, ev.resolved["d"].value) == ("value", True)
    assert (ev.resolved["e"].state, ev.resolved["e"].value) == ("value", "high")
    assert ev.resolved["d"].reasons == [("d-true", "a is true", ())]


def test_the_result_orders_recommendations_by_urgency_then_code_and_chains_the_reasons() -> None:
    g = engine.load()
    ev = _evaluation(g, {"anc": 0.3, "temperature": 39.0, "hemoglobin": 6.5})
    res = result(ev, g.info, {})
    keys = [(urgency_rank(r.urgency), r.code) for r in res.recommendations]
    assert keys == sorted(keys) and {r.urgency for r in res.recommendations} == set(urgencies())
    rec = next(r for r in res.recommendations if r.code == "fn-assess-resuscitate")
    assert rec.because[0].startswith("rule fn-assess-resuscitate (")
    assert "febrile_neutropenia = true by febrile-neutropenia: anc 0.3 ×10⁹/L < 0.5 ×10⁹/L; febrile is true" \
        in rec.because
    assert "febrile = true by febrile-true: temperature 39 °C ≥ 38.3 °C" in rec.because


def test_missing_names_only_facts_that_would_decide_something_still_open() -> None:
    g = engine.load()
    res = result(_evaluation(g, {"anc": 0.3}), g.info, {})
    temperature = next(m for m in res.missing if m.fact == "temperature")
    assert "febrile" in temperature.needed_for
    res = result(_evaluation(g, {"anc": 0.3, "temperature": 39.0}), g.info, {})
    names = [m.fact for m in res.missing]
    assert list(res.missing) == sorted(res.missing, key=sort_key)  # ranked (contract section 8)
    assert "temperature" not in names and "anc" not in names
    age = next(m for m in res.missing if m.fact == "age")
    assert "mascc_score" in age.needed_for and list(age.needed_for) == sorted(age.needed_for)
    decided = {"febrile", "febrile_neutropenia", "neutropenia_grade", "profound_neutropenia"}
    assert not decided & {t for m in res.missing for t in m.needed_for}


def test_a_score_with_missing_items_is_a_range_and_decides_the_risk_when_it_can() -> None:
    g = engine.load()
    facts = {"anc": 0.3, "temperature": 39.0, "symptom_burden": "mild", "systolic_bp": 120, "copd": False,
             "tumor_type": "solid", "dehydration_requiring_iv": False, "onset_setting": "outpatient"}
    res = result(_evaluation(g, facts), g.info, {})
    assert res.derived["mascc_score_range"] == [24, 26] and res.derived["mascc_score"] is None
    assert res.derived["fn_risk"] == "low"
    assert "score:mascc" in res.rules_fired


def test_only_derived_facts_some_rule_matches_are_asserted(guideline: engine.Guideline,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A derived fact no compiled rule reads is resolved and reported, but never sent to durable_rules
    (which would not store it): one assertion less per such fact, and nothing else changes."""
    from engine.run import durable

    read = {p.fact for a in guideline.program.actions.values() for p in a.patterns if p.fact} | \
        {fact for a in guideline.program.actions.values() for _, fact in a.item_patterns}
    unread = set(guideline.content.derived) - read
    assert unread, "the bundled guideline has derived facts nothing reads (the case this covers)"
    asserted: list[str] = []
    real = durable.Ruleset._assert

    def spy(self: durable.Ruleset, fact: Any, stored: list[str]) -> int:
        asserted.append(fact[0] if type(fact) is tuple else str(fact["id"]))
        return real(self, fact, stored)

    monkeypatch.setattr(durable.Ruleset, "_assert", spy)
    result = guideline.evaluate({"anc": 0.3, "temperature": 38.6, "age": 60})
    assert unread & set(result.derived), "an unread derived fact is still reported"
    assert not {f"d:{name}" for name in unread} & set(asserted)
    assert {f"d:{name}" for name in read if name in result.derived} & set(asserted)
