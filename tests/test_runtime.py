"""The fast runtime gives the answers the plain one gives, and the lean cohort row equals the full result.

Reference runs here switch each speed-up off (a fresh session per patient, no pre-encoded facts)
and must give byte-identical results; benchmarks/snapshot.py compares against the code before the
speed-ups on 2,000 patients, and benchmarks/runtime.py measures them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.compile.encoding import ActionKind
from engine.products.cases import load_cases
from engine.run import durable as _durable
from engine.run.row import Row

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from patients import random_patients  # noqa: E402


@pytest.fixture(scope="module")
def patients(guideline: engine.Guideline) -> list[dict[str, Any]]:
    cases, _ = load_cases(engine.BUNDLED_GUIDELINE, guideline)
    examples = [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    return examples + [c.facts for c in cases] + random_patients(guideline.content, 1000)


def _answers(guideline: engine.Guideline, facts: dict[str, Any], **options: Any) -> str:
    result = guideline.evaluate(facts, **options)
    return json.dumps([result.to_dict(), sorted(result.rules_fired)], sort_keys=True)


def test_a_reused_session_answers_as_a_fresh_one(guideline: engine.Guideline, patients: list[dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    reused = [_answers(guideline, p) for p in patients[:400]]
    monkeypatch.setattr(guideline._ruleset, "reuse", False)
    fresh = guideline._ruleset.fresh_sessions
    assert [_answers(guideline, p) for p in patients[:400]] == reused
    assert guideline._ruleset.fresh_sessions == fresh + 400


def test_facts_encoded_once_are_the_facts_the_actions_derive(guideline: engine.Guideline,
                                                             patients: list[dict[str, Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert guideline._ruleset.constants, "no derived fact is constant: nothing was encoded once"
    fast = [_answers(guideline, p) for p in patients[:400]]
    monkeypatch.setattr(guideline._ruleset, "constants", {})  # every fact encoded as it is derived
    assert [_answers(guideline, p) for p in patients[:400]] == fast


def test_what_if_and_why_not_answer_as_with_fresh_sessions(guideline: engine.Guideline,
                                                           patients: list[dict[str, Any]],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    codes = list(guideline.content.catalogue)
    examples = patients[:8]
    why_not = guideline._why_not.get()[1]
    reused = [(_answers(guideline, p, what_if=True), _answers(guideline, p, why_not=codes)) for p in examples]
    monkeypatch.setattr(guideline._ruleset, "reuse", False)
    monkeypatch.setattr(why_not, "reuse", False)
    assert [(_answers(guideline, p, what_if=True), _answers(guideline, p, why_not=codes)) for p in examples] == reused


def test_rows_equal_the_full_results(guideline: engine.Guideline, patients: list[dict[str, Any]]) -> None:
    """Codes, derived facts, applicability and missing names of >= 1,000 patients, with and without missing."""
    assert len(patients) > 1000
    for facts in patients:
        full = guideline.evaluate(facts)
        want = (tuple(full.codes), full.derived, full.applicability, full.notes)
        row = guideline.evaluate_row(facts)
        assert (row.codes, row.derived, row.applicability, row.notes) == want, facts
        assert row.missing == tuple(m.fact for m in full.missing), facts
        lean = guideline.evaluate_row(facts, missing=False)
        assert (lean.codes, lean.derived, lean.applicability, lean.notes, lean.missing) == (*want, None), facts


def test_a_row_without_missing_runs_no_undetermined_recommendation_rule(guideline: engine.Guideline) -> None:
    program, ruleset = guideline._without_missing.get()
    kinds = {a.kind for a in program.actions.values()}
    assert ActionKind.RECOMMEND_UNDETERMINED not in kinds
    assert ActionKind.RECOMMEND_UNDETERMINED in {a.kind for a in guideline.program.actions.values()}
    assert set(program.definition) == set(program.actions) < set(guideline.program.definition)
    assert ruleset is not guideline._ruleset and ruleset.name != guideline._ruleset.name


def test_the_ruleset_without_missing_is_built_on_first_use() -> None:
    g = engine.load()
    assert not g._without_missing.built
    g.evaluate({"anc": 0.2}), g.evaluate_row({"anc": 0.2})
    assert not g._without_missing.built
    g.evaluate_row({"anc": 0.2}, missing=False)
    assert g._without_missing.built


def test_a_row_has_the_cohort_fields(guideline: engine.Guideline) -> None:
    """Contract section 10: applicability, codes, derived, missing (fact names)."""
    row = guideline.evaluate_row({"anc": 0.2, "temperature": 39.0, "age": 50})
    assert isinstance(row, Row) and set(row.to_dict()) == {"applicability", "codes", "derived", "missing"}
    assert row.to_dict()["codes"][0] == "fn-assess-resuscitate" and "symptom_burden" in row.to_dict()["missing"]
    assert "missing" not in guideline.evaluate_row({"anc": 0.2}, missing=False).to_dict()
    child = guideline.evaluate_row({"anc": 0.2, "temperature": 39.0, "age": 4})
    assert (child.applicability.status, child.codes) == ("does-not-apply", ())
    assert child.derived["febrile_neutropenia"] is True  # derived facts describe the patient anyway


def test_a_row_refuses_bad_input_like_evaluate(guideline: engine.Guideline) -> None:
    with pytest.raises(engine.InputFactsError, match="ancc"):
        guideline.evaluate_row({"ancc": 0.2})
    with pytest.raises(engine.InputFactsError, match="temperature"):
        guideline.evaluate_row({"temperature": "hot"}, missing=False)


def test_an_action_that_raises_voids_a_row_too(guideline: engine.Guideline, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = guideline.evaluate_row({"anc": 2.0}, missing=False)
    _, ruleset = guideline._without_missing.get()
    def failing(handle: Any, state: Any) -> str:
        raise RuntimeError("core failed")

    monkeypatch.setattr(_durable._core, "complete_and_start_action", failing)
    with pytest.raises(engine.RuleEngineError, match="core failed"):
        guideline.evaluate_row({"anc": 0.2, "temperature": 39.0}, missing=False)
    monkeypatch.undo()
    assert guideline.evaluate_row({"anc": 2.0}, missing=False) == expected
