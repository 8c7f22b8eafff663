"""What-if (contract section 8): value classes from the resolved thresholds, each scenario computed on
the engine, in the order of `missing`, bounded in cost, through the API, the CLI and the cases."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once

import engine
from engine.cli import main
from engine.products.cases import Case, run_case
from engine.run import what_if as _what_if
from engine.run.what_if import MAX_WHAT_IF_EVALUATIONS, value_classes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
PATIENTS: dict[str, dict[str, Any]] = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES}
PATIENTS |= {"anc 0.4": {"anc": 0.4}, "no facts": {}}


def test_temperature_classes_are_read_from_the_thresholds(guideline: engine.Guideline) -> None:
    # lt 38.0, lt 38.3, ge 38.3: below 38, 38.0-38.2, 38.3 and above. The points 38.0 and 38.3 behave
    # like the interval above them (lt / ge), so they are no classes of their own.
    assert value_classes(guideline.content, "temperature") == [37, 38.1, 39]
    assert value_classes(guideline.content, "on_tki") == [True, False]
    spec = guideline.content.facts["symptom_burden"]
    assert value_classes(guideline.content, "symptom_burden") == list(spec.values)


def test_a_threshold_point_is_a_class_when_strictness_makes_it_differ(bundled_copy: Path) -> None:
    # `gt 38.3` beside `lt 38.3`: exactly 38.3 is neither, so it is a class of its own.
    replace_once(bundled_copy / "rules" / "febrile-neutropenia.yaml", "{fact: temperature, ge: 38.3, unit: Cel}",
                 "{fact: temperature, gt: 38.3, unit: Cel}")
    assert value_classes(engine.load(bundled_copy).content, "temperature") == [37, 38.1, 38.3, 39]


def test_thresholds_in_another_unit_give_canonical_representatives(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "rules" / "febrile-neutropenia.yaml", "{fact: temperature, ge: 38.3, unit: Cel}",
                 "{fact: temperature, ge: 100.94, unit: '[degF]'}")  # = 38.3 °C exactly
    assert value_classes(engine.load(bundled_copy).content, "temperature") == [37, 38.1, 39]


def test_representatives_stay_in_the_plausible_range(guideline: engine.Guideline) -> None:
    for name, spec in guideline.content.facts.items():
        for value in value_classes(guideline.content, name):
            if spec.type == "number" and spec.range:
                assert spec.range[0] <= value <= spec.range[1], (name, value)


@pytest.mark.parametrize("name", PATIENTS)
def test_every_scenario_is_the_patient_evaluated_with_that_value(guideline: engine.Guideline, name: str) -> None:
    facts = PATIENTS[name]
    result = guideline.evaluate(facts, what_if=True)
    assert result.what_if is not None
    assert [e.fact for e in result.what_if] == [m.fact for m in result.missing]
    before = result.codes
    for entry in result.what_if:
        assert [s.value for s in entry.scenarios] == value_classes(guideline.content, entry.fact)
        assert not entry.truncated
        for scenario in entry.scenarios:
            after = guideline.evaluate({**facts, entry.fact: scenario.value}).codes
            assert list(scenario.adds) == [c for c in after if c not in before]
            assert list(scenario.removes) == [c for c in before if c not in after]
    # The rest of the result is the normal evaluation's, byte for byte.
    plain = guideline.evaluate(facts).to_dict()
    assert {k: v for k, v in result.to_dict().items() if k != "what_if"} == plain


def test_temperature_decides_febrile_neutropenia_for_anc_0_4(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 0.4}, what_if=True)
    assert result.what_if is not None
    temperature = next(e for e in result.what_if if e.fact == "temperature")
    by_value = {s.value: s for s in temperature.scenarios}
    assert "fn-empirical-iv-antibiotics" in by_value[39].adds
    assert by_value[38.1].adds == by_value[38.1].removes == ()
    assert by_value[37].adds == ("afebrile-cause-evaluation",)


def test_what_if_only_when_asked(guideline: engine.Guideline, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("what-if ran without being asked")

    monkeypatch.setattr("engine.guideline._what_if", refuse)
    result = guideline.evaluate({"anc": 0.4})
    assert result.what_if is None and "what_if" not in result.to_dict()


def test_the_evaluation_budget_cuts_and_says_so(guideline: engine.Guideline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_what_if, "MAX_WHAT_IF_EVALUATIONS", 5)
    entries = guideline.evaluate({"anc": 0.4}, what_if=True).to_dict()["what_if"]
    assert sum(len(e["scenarios"]) for e in entries) == 5
    cut = [e for e in entries if e.get("truncated")]
    assert cut and all(e["truncated"] is True for e in cut)
    assert all("truncated" not in e for e in entries[:2])  # the first two facts (2 values each) fit


def test_every_example_patient_is_within_the_budget(guideline: engine.Guideline) -> None:
    for name, facts in PATIENTS.items():
        entries = guideline.evaluate(facts, what_if=True).what_if or ()
        assert sum(len(e.scenarios) for e in entries) <= MAX_WHAT_IF_EVALUATIONS // 2, name


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_cli_what_if_on_every_example(fast_cli: None, path: Path, fmt: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["evaluate", str(path), "--what-if", "--format", fmt], out=out, err=err) == 0, err.getvalue()
    if fmt == "json":
        data = json.loads(out.getvalue())
        assert [e["fact"] for e in data["what_if"]] == [m["fact"] for m in data["missing"]]
        assert "why_not" not in data
    else:
        assert "WOULD CHANGE THE ADVICE" in out.getvalue()


def test_cli_text_folds_the_facts_that_change_nothing(fast_cli: None) -> None:
    out = io.StringIO()
    assert main(["evaluate", str(ROOT / "examples" / "incomplete-data.json"), "--what-if"], out=out) == 0
    section = out.getvalue().split("WOULD CHANGE THE ADVICE", 1)[1].split("\n\n", 1)[0]
    assert "  temperature 39 °C: adds fn-assess-resuscitate," in section
    assert "  temperature 38.1 °C" not in section  # changes nothing: folded
    assert "more change nothing on their own: on_fluoroquinolone_prophylaxis, central_venous_catheter, " \
        "acinetobacter_infection" in " ".join(section.split())


def test_without_the_flag_the_output_is_unchanged(fast_cli: None) -> None:
    out = io.StringIO()
    assert main(["evaluate", str(ROOT / "examples" / "incomplete-data.json")], out=out) == 0
    assert "WOULD CHANGE THE ADVICE" not in out.getvalue() and "WHY NOT" not in out.getvalue()


def test_a_case_checks_what_if_scenarios(guideline: engine.Guideline) -> None:
    def case(expect: dict[str, Any]) -> list[str]:
        return run_case(guideline, Case("c", {"anc": 0.4}, expect, "x.yaml", 1)).failures

    assert case({"what_if": {"temperature": [{"value": 37, "adds": ["afebrile-cause-evaluation"]}]}}) == []
    assert case({"what_if": {"temperature": [{"value": 37, "adds": []}]}}) == [
        "what-if temperature = 37 adds: expected [], got [afebrile-cause-evaluation]"]
    assert case({"what_if": {"temperature": [{"value": 40}]}}) == [
        "what-if temperature = 40: no such scenario (values tried: 37, 38.1, 39)"]
    assert case({"what_if": {"anc": [{"value": 1}]}}) == [
        "what-if anc: not a missing fact for this patient, so no scenario was tried"]
