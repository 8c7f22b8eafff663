"""Applicability (contract section 7): whom the guideline is for, decided by its content on the engine.

The three statuses through the API, the CLI (JSON and the text's first lines) and CDS Hooks; a
second guideline whose population is removed or changed, so the content decides, not the code;
validate's located problems; and the population matched by durable_rules (compiled actions).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import position, replace_once

import engine
from engine.cds.discovery import services
from engine.cds.hooks import CdsCore
from engine.cli import main
from engine.compile.encoding import ActionKind
from engine.run.applicability import in_words
from engine.run.result import Applicability

ROOT = Path(__file__).resolve().parent.parent
# Low-risk febrile neutropenia, MASCC 26 whatever the age (every age here is under 60).
LOW_RISK = {"anc": 0.3, "temperature": 39.0, "symptom_burden": "mild", "systolic_bp": 120, "copd": False,
            "tumor_type": "solid", "dehydration_requiring_iv": False, "onset_setting": "outpatient",
            "clinically_stable_hours": 30, "on_fluoroquinolone_prophylaxis": False}
CHILD, ADULT = {**LOW_RISK, "age": 4}, {**LOW_RISK, "age": 45}
ADULTS = "Adults (18 years or older)"
POPULATION = """population:
  description: Adults (18 years or older)
  when: {fact: age, ge: 18, unit: a}
"""


def test_a_child_gets_no_recommendation_and_is_told_why(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(CHILD)
    assert result.applicability == Applicability("does-not-apply", ADULTS, ("age 4 years is below 18 years",))
    assert result.recommendations == ()
    # Derived facts still describe the patient.
    assert result.derived["febrile_neutropenia"] is True and result.derived["mascc_score"] == 26
    recommending = {r.id for r in guideline.content.rules if r.recommend}
    assert not result.rules_fired & recommending  # nothing recommended: coverage does not count them


def test_an_adult_with_the_same_facts_gets_oral_step_down(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(ADULT)
    assert result.applicability == Applicability("applies", ADULTS, ("age 45 years is at least 18 years",))
    assert "fn-oral-step-down" in result.codes
    assert "age" not in [m.fact for m in result.missing]


@pytest.mark.parametrize("age, status", [(18, "applies"), (17.9, "does-not-apply"), (17, "does-not-apply"),
                                         (130, "applies"), (0, "does-not-apply")])
def test_the_boundary_is_the_content_s_18_years(guideline: engine.Guideline, age: float, status: str) -> None:
    assert guideline.evaluate({**LOW_RISK, "age": age}).applicability.status == status


def test_unknown_age_is_undetermined_recommendations_as_usual(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(LOW_RISK)
    assert result.applicability == Applicability("undetermined", ADULTS, ("age is not given",))
    assert result.codes == guideline.evaluate(ADULT).codes
    # The age is also a MASCC item (under 60 years): both wait for it. It decides no
    # recommendation by itself here, so it is ranked among the facts that decide none (section 8).
    age = next(m for m in result.missing if m.fact == "age")
    assert age.needed_for == ("applicability", "mascc_score")
    assert age.decides.urgency is None and age.decides.recommendations == 0


def test_outside_the_population_missing_keeps_only_what_decides_derived_facts(guideline: engine.Guideline) -> None:
    child = {"age": 4, "anc": 0.3, "temperature": 39.0}
    missing = guideline.evaluate(child).missing
    adult_missing = guideline.evaluate({**child, "age": 45}).missing
    codes = set(guideline.content.catalogue)
    assert missing and all(t in guideline.content.derived for m in missing for t in m.needed_for)
    assert any(t in codes for m in adult_missing for t in m.needed_for)  # the filter had work to do
    assert {m.fact for m in missing} <= {m.fact for m in adult_missing}


def test_every_result_carries_applicability(guideline: engine.Guideline) -> None:
    for facts in ({}, {"anc": 2.5}, CHILD, ADULT):
        out = guideline.evaluate(facts).to_dict()
        assert set(out["applicability"]) == {"status", "population", "because"}
    assert guideline.evaluate({}).to_dict()["applicability"]["status"] == "undetermined"


# --- CLI ----------------------------------------------------------------------------------------

def _cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], facts: dict[str, Any], *args: str) -> tuple[int, str]:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(facts))
    code = main(["evaluate", str(path), *args])
    return code, capsys.readouterr().out


@pytest.mark.usefixtures("fast_cli")
def test_cli_json_and_text_for_a_child(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(tmp_path, capsys, CHILD, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["recommendations"] == []
    assert doc["applicability"] == {"status": "does-not-apply", "population": ADULTS,
                                    "because": ["age 4 years is below 18 years"]}
    code, out = _cli(tmp_path, capsys, CHILD)
    lines = out.splitlines()
    assert code == 0
    assert lines[2] == f"THIS GUIDELINE DOES NOT APPLY: {ADULTS} — age 4 years is below 18 years"
    assert "IMMEDIATE" not in out and "ROUTINE" not in out and "No recommendation fires" not in out


@pytest.mark.usefixtures("fast_cli")
def test_cli_text_first_lines_undetermined_and_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = _cli(tmp_path, capsys, LOW_RISK)
    assert out.splitlines()[2] == f"Not known whether this guideline applies ({ADULTS}): age is not given."
    assert "IMMEDIATE" in out
    _, out = _cli(tmp_path, capsys, ADULT)
    assert out.splitlines()[2] == f"Applies: {ADULTS} — age 45 years is at least 18 years."
    code, out = _cli(tmp_path, capsys, {"anc": 2.5, "temperature": 37.0}, "--format", "json")
    age = next(m for m in json.loads(out)["missing"] if m["fact"] == "age")
    assert code == 0 and age["needed_for"] == ["applicability"] and age["decides"]["urgency"] is None


# --- CDS Hooks -----------------------------------------------------------------------------------

def _hook_call(birth_date: str) -> bytes:
    request = json.loads((ROOT / "examples" / "cds" / "patient-view-febrile-neutropenia-low-risk.json").read_text())
    request = copy.deepcopy(request)
    request["prefetch"]["patient"]["birthDate"] = birth_date
    return json.dumps(request).encode()


def test_cds_outside_the_population_returns_one_info_card(guideline: engine.Guideline) -> None:
    core = CdsCore(guideline)
    service = services(guideline)["neutropenia-patient-view"]
    child = core.call(service, _hook_call("2020-01-01"), "test")["cards"]  # as of 2024-05-03: 4 years
    assert len(child) == 1
    card = child[0]
    assert card["indicator"] == "info" and card["summary"].startswith("Guideline does not apply")
    assert "age 4 years is below 18 years" in card["detail"] and ADULTS in card["detail"]
    assert card["source"]["topic"]["code"] == "#applicability"
    adult = core.call(service, _hook_call("1971-09-20"), "test")["cards"]
    assert len(adult) > 1 and all("does not apply" not in c["summary"] for c in adult)


# --- the content decides -------------------------------------------------------------------------

def test_without_population_the_guideline_applies_to_everyone(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "guideline.yaml", POPULATION, "")
    text = (bundled_copy / "guideline.yaml").read_text()
    assert "population:" not in text
    copy_ = engine.load(bundled_copy)
    result = copy_.evaluate(CHILD)
    assert result.applicability == Applicability("applies", "everyone", ())
    assert "fn-oral-step-down" in result.codes
    assert all("applicability" not in m.needed_for for m in copy_.evaluate(LOW_RISK).missing)
    assert not [a for a in copy_.program.actions.values() if a.kind.name.startswith("POPULATION")]


def test_another_population_makes_the_adult_get_nothing(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "guideline.yaml", POPULATION, """population:
  description: Children (under 18 years)
  when: {fact: age, lt: 18}
""")
    children = engine.load(bundled_copy)
    adult = children.evaluate(ADULT)
    assert adult.applicability == Applicability("does-not-apply", "Children (under 18 years)",
                                                ("age 45 years is at least 18 years",))
    assert adult.recommendations == ()
    assert "fn-oral-step-down" in children.evaluate(CHILD).codes


def test_a_population_of_several_parts_says_each_decided_part(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "guideline.yaml", "  when: {fact: age, ge: 18, unit: a}\n",
                 "  when: {all: [{fact: age, ge: 18}, {fact: tumor_type, is: solid}]}\n")
    g = engine.load(bundled_copy)
    both = g.evaluate({**ADULT, "age": 4, "tumor_type": "hematologic"}).applicability
    assert both.status == "does-not-apply"
    assert set(both.because) == {"age 4 years is below 18 years", "tumor_type is hematologic, not solid"}
    unknown = g.evaluate({"anc": 0.3, "age": 45})
    assert unknown.applicability.status == "undetermined"
    assert ("tumor_type", ("applicability",)) in [(m.fact, m.needed_for) for m in unknown.missing]


def test_validate_locates_a_population_naming_an_unknown_fact(bundled_copy: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = replace_once(bundled_copy / "guideline.yaml", "{fact: age, ge: 18, unit: a}", "{fact: agee, ge: 18, unit: a}")
    assert main(["validate", str(bundled_copy)]) == 2
    err = capsys.readouterr()
    line, col = position(path, "agee")
    assert f"guideline.yaml:{line}:{col}: unknown-fact: unknown fact 'agee' (did you mean 'age'?)" in err.out + err.err


def test_validate_rejects_a_population_unit_the_fact_does_not_take(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "guideline.yaml", "ge: 18, unit: a}", "ge: 18, unit: mg}")
    problems = engine.validate(bundled_copy)
    assert [p.code for p in problems] == ["unit-mismatch"] and problems[0].file.endswith("guideline.yaml")


# --- on the engine -------------------------------------------------------------------------------

def test_the_population_is_compiled_into_durable_rules(guideline: engine.Guideline) -> None:
    kinds = [a.kind for a in guideline.program.actions.values()]
    for kind in (ActionKind.POPULATION, ActionKind.POPULATION_UNDETERMINED, ActionKind.POPULATION_NOT_MET):
        assert kinds.count(kind) == 1
    names = {a.kind: n for n, a in guideline.program.actions.items()}
    assert all(names[k] in guideline.program.definition for k in names)


def test_the_status_is_what_durable_rules_fired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the population rule not fired by the engine, the result could not claim a status."""
    from engine.run import actions

    # A guideline of its own: each program builds its dispatch table from the handlers once, at its
    # first evaluation (engine/run/actions.py), so the shared fixture must never see these spies.
    guideline = engine.load()

    handlers = dict(actions.Evaluation._HANDLERS)
    fired: list[ActionKind] = []

    def spy(self: actions.Evaluation, action: Any, matched: Any) -> None:
        fired.append(action.kind)
        handlers[action.kind](self, action, matched)

    for kind in (ActionKind.POPULATION, ActionKind.POPULATION_UNDETERMINED, ActionKind.POPULATION_NOT_MET):
        monkeypatch.setitem(actions.Evaluation._HANDLERS, kind, spy)
    guideline.evaluate(CHILD)
    guideline.evaluate(ADULT)
    guideline.evaluate(LOW_RISK)
    assert fired == [ActionKind.POPULATION_NOT_MET, ActionKind.POPULATION, ActionKind.POPULATION_UNDETERMINED]
    monkeypatch.setitem(actions.Evaluation._HANDLERS, ActionKind.POPULATION_NOT_MET, lambda *a: None)
    guideline.program.cache.clear()  # the dispatch table again, with the new handler
    with pytest.raises(engine.RuleEngineError, match="population"):
        guideline.evaluate(CHILD)


def test_in_words_reads_each_comparison(guideline: engine.Guideline) -> None:
    atom = guideline.content.population.when  # type: ignore[union-attr]
    assert in_words(atom, frozenset("t"), 40, "a") == "age 40 years is at least 18 years"
    assert in_words(atom, frozenset("f"), 4, "a") == "age 4 years is below 18 years"
    assert in_words(atom, frozenset("u"), None, "a") == "age is not given"


def test_cases_expect_applicability(guideline: engine.Guideline) -> None:
    from engine.products.cases import Case, run_case

    wrong = Case("child", CHILD, {"applicability": "applies"}, "x.yaml", 1)
    assert run_case(guideline, wrong).failures == [
        f"expected applicability applies; it is does-not-apply ({ADULTS}: age 4 years is below 18 years)"]
    assert run_case(guideline, Case("child", CHILD, {"applicability": "does-not-apply"}, "x.yaml", 1)).passed


def test_a_case_expecting_does_not_apply_without_a_population_is_rejected(bundled_copy: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    replace_once(bundled_copy / "guideline.yaml", POPULATION, "")
    assert main(["test", str(bundled_copy)]) == 2
    out = capsys.readouterr()
    assert "no-population" in out.out + out.err and "applicability.yaml" in out.out + out.err


# --- the rendered document and the semantic diff -------------------------------------------------

def test_render_has_a_whom_this_guideline_is_for_section() -> None:
    from engine.products.render.document import render

    markdown = render(None, "markdown")
    section = markdown.split('<a id="population"></a>', 1)[1].split("<a id=", 1)[0]
    assert "## Whom this guideline is for" in section
    assert f"**{ADULTS}**: age ≥ 18 years." in section
    assert "validated in adults" in section and "(#ref-1)" in section and "(#ref-2)" in section
    html = render(None, "html")
    assert '<section id="population"><h2>Whom this guideline is for</h2>' in html
    assert '<a href="#population">Whom this guideline is for</a>' in html


def test_the_semantic_diff_reports_a_population_change(guideline: engine.Guideline, bundled_copy: Path) -> None:
    from engine.pipeline import analyse
    from engine.products.diff.results import MAJOR, MINOR
    from engine.products.diff.semantic import semantic_diff

    replace_once(bundled_copy / "guideline.yaml", "ge: 18, unit: a}", "ge: 16, unit: a}")
    narrowed = analyse(bundled_copy).content
    assert narrowed is not None
    changes = [c for c in semantic_diff(narrowed, guideline.content) if c.area == "population"]
    assert [(c.field, c.level, c.old, c.new) for c in changes] == [
        ("when", MAJOR, "age ≥ 16 years", "age ≥ 18 years")]
    replace_once(bundled_copy / "guideline.yaml", POPULATION.replace("18, unit", "16, unit"), "")
    everyone = analyse(bundled_copy).content
    assert everyone is not None
    assert [(c.what, c.level) for c in semantic_diff(guideline.content, everyone) if c.area == "population"] == [
        ("removed", MINOR)]
    assert [(c.what, c.level) for c in semantic_diff(everyone, guideline.content) if c.area == "population"] == [
        ("added", MAJOR)]
