"""Why-not (contract section 8): the engine decides fired / not-fired / undetermined for any catalogue
code, through a separate why-not ruleset built lazily and once; API, CLI, cases, validate."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once

import engine
from engine.cli import main
from engine.compile import limits
from engine.compile.encoding import ActionKind
from engine.pipeline import analyse
from engine.products.cases import Case, load_cases, run_case
from engine.run import why_not as _why_not
from engine.run.why_not import MAX_WHY_NOT_CODES, UnknownCodeError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
PATIENTS: dict[str, dict[str, Any]] = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES}
PATIENTS |= {"anc 0.4": {"anc": 0.4}, "no facts": {}, "afebrile anc 2.5": {"anc": 2.5, "temperature": 36.8}}
HIGH_RISK = PATIENTS["febrile-neutropenia-high-risk"]


@pytest.mark.parametrize("name", PATIENTS)
def test_status_agrees_with_the_result_for_every_code(guideline: engine.Guideline, name: str) -> None:
    facts = PATIENTS[name]
    codes = list(guideline.content.catalogue)
    asked = guideline.evaluate(facts, why_not=codes)
    plain = guideline.evaluate(facts)
    # The why-not ruleset gives the very same result; only `why_not` is added.
    assert {k: v for k, v in asked.to_dict().items() if k != "why_not"} == plain.to_dict()
    waiting = {code for m in plain.missing for code in m.needed_for}
    assert asked.why_not is not None and [e.code for e in asked.why_not] == codes
    for entry in asked.why_not:
        assert (entry.status == "fired") == (entry.code in plain.codes), entry
        assert (entry.status == "undetermined") == (entry.code in waiting and entry.code not in plain.codes), entry
        assert entry.because, entry
        if entry.status == "fired":
            rec = next(r for r in plain.recommendations if r.code == entry.code)
            assert entry.because == rec.because
        for rule in entry.rules:
            assert rule.because, rule
            assert (rule.status == "undetermined") == bool(rule.waits_for), rule
            assert set(rule.waits_for) <= {m.fact for m in plain.missing}


def test_not_fired_names_the_false_parts_with_their_values(guideline: engine.Guideline) -> None:
    (entry,) = guideline.evaluate(HIGH_RISK, why_not=["fn-oral-step-down"]).why_not or ()
    assert entry.status == "not-fired"
    (rule,) = entry.rules
    assert rule.because == ("fn_risk is high, not low", "clinically_stable_hours 0 h is below 24 h",
                            "on_fluoroquinolone_prophylaxis is true")
    assert entry.because[0].startswith("rule fn-oral-step-down (Oral step-down for low-risk patients): fn_risk is high")


def test_a_false_derived_fact_comes_with_what_made_it_false(guideline: engine.Guideline) -> None:
    (entry,) = guideline.evaluate({"anc": 2.5, "temperature": 36.8}, why_not=["fn-oral-step-down"]).why_not or ()
    assert entry.status == "not-fired"
    assert entry.rules[0].because == ("febrile_neutropenia is false", "fn_risk does not apply")
    assert "febrile_neutropenia = false as none of its conditions holds: febrile is false" in entry.because


def test_undetermined_names_the_undecided_parts_and_the_facts_they_wait_for(guideline: engine.Guideline) -> None:
    entries = guideline.evaluate({"anc": 0.4}, why_not=["fn-empirical-iv-antibiotics", "fn-oral-step-down"]).why_not
    assert entries is not None
    iv, oral = entries
    assert iv.status == oral.status == "undetermined"
    assert iv.rules[0].because == ("febrile_neutropenia is undetermined",)
    assert set(iv.rules[0].waits_for) == {"temperature", "fever_sustained_1h"}
    assert "clinically_stable_hours is not given" in oral.rules[0].because
    assert "waits for: " in oral.because[0] and "temperature" in oral.rules[0].waits_for


def test_a_code_with_several_rules_is_reported_per_rule(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "rules" / "risk.yaml", "  - id: fn-early-discharge\n", """\
  - id: fn-oral-step-down-stable
    title: Oral step-down when stable for 48 hours
    when:
      all:
        - {fact: fn_risk, is: low}
        - {fact: clinically_stable_hours, ge: 48, unit: h}
    then: {recommend: fn-oral-step-down}
    citations: [1]
    rationale: Test rule.

  - id: fn-early-discharge
""")
    g = engine.load(bundled_copy)
    (entry,) = g.evaluate({**HIGH_RISK, "clinically_stable_hours": 12}, why_not=["fn-oral-step-down"]).why_not or ()
    assert [(r.rule, r.status) for r in entry.rules] == [("fn-oral-step-down", "not-fired"),
                                                        ("fn-oral-step-down-stable", "not-fired")]
    assert entry.rules[1].because == ("fn_risk is high, not low", "clinically_stable_hours 12 h is below 48 h")
    assert [line.split(":")[0] for line in entry.because if line.startswith("rule ")] == [
        "rule fn-oral-step-down (Oral step-down for low-risk patients)",
        "rule fn-oral-step-down-stable (Oral step-down when stable for 48 hours)"]
    (entry,) = g.evaluate({"anc": 0.3, "temperature": 38.6, "clinically_stable_hours": 50,
                           "on_fluoroquinolone_prophylaxis": True, "symptom_burden": "none", "systolic_bp": 120,
                           "copd": False, "tumor_type": "solid", "dehydration_requiring_iv": False,
                           "onset_setting": "outpatient", "age": 45}, why_not=["fn-oral-step-down"]).why_not or ()
    assert entry.status == "fired"
    assert [(r.rule, r.status) for r in entry.rules] == [("fn-oral-step-down", "not-fired"),
                                                        ("fn-oral-step-down-stable", "fired")]
    # One rule known false, the other undecided: the code is undetermined (it could still fire).
    (entry,) = g.evaluate({"anc": 0.3, "temperature": 38.6, "clinically_stable_hours": 50,
                           "on_fluoroquinolone_prophylaxis": True}, why_not=["fn-oral-step-down"]).why_not or ()
    assert [(r.rule, r.status) for r in entry.rules] == [("fn-oral-step-down", "not-fired"),
                                                        ("fn-oral-step-down-stable", "undetermined")]
    assert entry.status == "undetermined"


def test_unknown_code_is_bad_input_with_a_suggestion(guideline: engine.Guideline) -> None:
    with pytest.raises(UnknownCodeError) as raised:
        guideline.evaluate({"anc": 0.4}, why_not=["fn-oral-stepdown"])
    assert str(raised.value) == "unknown recommendation code 'fn-oral-stepdown' (did you mean 'fn-oral-step-down'?)"
    assert raised.value.exit_code == 2
    with pytest.raises(UnknownCodeError, match="at most"):
        guideline.evaluate({}, why_not=["transfuse-rbc"] * (MAX_WHY_NOT_CODES + 1))


def test_cli_unknown_code_exits_2_with_a_suggestion(fast_cli: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["evaluate", str(EXAMPLES[0]), "--why-not", "fn-oral-stepdown"], out=out, err=err)
    assert code == 2 and out.getvalue() == ""
    assert err.getvalue() == "error: unknown recommendation code 'fn-oral-stepdown' (did you mean 'fn-oral-step-down'?)\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_cli_why_not_on_every_example(fast_cli: None, path: Path, fmt: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["evaluate", str(path), "--why-not", "fn-oral-step-down", "--why-not", "transfuse-rbc", "--format", fmt]
    assert main(argv, out=out, err=err) == 0, err.getvalue()
    if fmt == "json":
        data = json.loads(out.getvalue())
        assert [e["code"] for e in data["why_not"]] == ["fn-oral-step-down", "transfuse-rbc"]
        assert all(set(e) == {"code", "status", "because", "rules"} for e in data["why_not"])
        assert "what_if" not in data
    else:
        text = out.getvalue()
        assert "WHY NOT\n  fn-oral-step-down: " in text and "\n  transfuse-rbc: " in text


def test_cli_why_not_with_fhir(fast_cli: None) -> None:
    fhir = ROOT / "examples" / "fhir"
    out = io.StringIO()
    argv = ["evaluate", "--fhir", str(fhir / "febrile-neutropenia-high-risk.json"), "--facts",
            str(fhir / "febrile-neutropenia-high-risk-extra.json"), "--as-of", "2024-05-03", "--why-not",
            "fn-oral-step-down", "--what-if", "--format", "json"]
    assert main(argv, out=out, err=io.StringIO()) == 0
    data = json.loads(out.getvalue())
    assert data["why_not"][0]["status"] == "not-fired" and "what_if" in data


def test_normal_evaluations_pay_nothing_for_why_not() -> None:
    g = engine.load()
    assert not any(a.kind is ActionKind.RECOMMEND_FALSE for a in g.program.actions.values())
    g.evaluate(HIGH_RISK)
    g.evaluate({"anc": 0.4}, what_if=True)
    assert not g._why_not.built  # the why-not ruleset is built on the first question only
    g.evaluate(HIGH_RISK, why_not=["fn-oral-step-down"])
    program, _ = g._why_not.get()
    false_rules = [a for a in program.actions.values() if a.kind is ActionKind.RECOMMEND_FALSE]
    assert false_rules and len(program.definition) == len(g.program.definition) + len(false_rules)


def test_the_lazy_why_not_ruleset_is_built_once_by_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    g = engine.load()
    builds: list[int] = []
    real = _why_not.compile_why_not
    barrier = threading.Barrier(2)

    def counting(*args: Any) -> Any:
        builds.append(1)
        return real(*args)

    monkeypatch.setattr(_why_not, "compile_why_not", counting)
    results: list[Any] = []

    def ask() -> None:
        barrier.wait()
        for _ in range(5):
            results.append(g.evaluate(HIGH_RISK, why_not=["fn-oral-step-down", "transfuse-rbc"]).to_dict())

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [1]
    assert len(results) == 10 and all(r == results[0] for r in results)


def test_validate_checks_the_why_not_ruleset_against_the_limits(monkeypatch: pytest.MonkeyPatch,
                                                               guideline: engine.Guideline) -> None:
    # A limit the normal ruleset meets but the why-not ruleset (more rules) does not.
    monkeypatch.setattr(limits, "MAX_RULES", len(guideline.program.definition) + 1)
    problems = analyse(guideline.path).problems
    assert len(problems) == 1 and problems[0].code == "too-large"
    assert "in the why-not ruleset" in problems[0].message and "rule '" in problems[0].message


def test_a_case_checks_why_not_statuses(guideline: engine.Guideline, bundled_copy: Path) -> None:
    outcome = run_case(guideline, Case("c", HIGH_RISK, {"why_not": {"fn-oral-step-down": "fired"}}, "x.yaml", 1))
    assert outcome.failures == ["why-not fn-oral-step-down: expected fired, got not-fired (rule fn-oral-step-down "
                                "(Oral step-down for low-risk patients): fn_risk is high, not low; "
                                "clinically_stable_hours 0 h is below 24 h; on_fluoroquinolone_prophylaxis is true; fn_risk = high by "
                                "fn-risk-high: febrile_neutropenia is true; mascc_score 4 < 21)"]
    (bundled_copy / "cases" / "typo.yaml").write_text(
        "cases:\n  - name: typo\n    facts: {anc: 0.4}\n    expect:\n      why_not: {fn-oral-stepdown: fired}\n"
        "      what_if: {temprature: [{value: 39, adds: [fn-empirical-iv-antibiotic]}]}\n", encoding="utf-8")
    _, problems = load_cases(bundled_copy, guideline)
    assert sorted(p.code for p in problems) == ["unknown-code", "unknown-code", "unknown-fact"]
    assert any("did you mean 'fn-oral-step-down'" in p.message for p in problems)


def test_every_clinical_case_answers_why_not_for_every_code(guideline: engine.Guideline) -> None:
    # The why-not ruleset (62 more rules) on every case's patient: never an engine error (durable_rules'
    # match stack), always the normal result, and fired exactly for the codes that fired.
    cases, problems = load_cases(guideline.path, guideline)
    assert not problems and len(cases) > 100
    codes = list(guideline.content.catalogue)
    for case in cases:
        plain = guideline.evaluate(case.facts)
        asked = guideline.evaluate(case.facts, why_not=codes)
        assert asked.codes == plain.codes, case.id
        assert [e.code for e in asked.why_not or () if e.status == "fired"] == \
            [c for c in codes if c in plain.codes], case.id


def test_a_recommendation_withheld_outside_the_population_is_not_fired_and_says_why(
        guideline: engine.Guideline) -> None:
    # Contract section 7: a child gets no recommendation although the rule's condition matches.
    child = {**HIGH_RISK, "age": 4}
    (entry,) = guideline.evaluate(child, why_not=["fn-high-risk-inpatient"]).why_not or ()
    assert entry.status == "not-fired"
    assert entry.rules[0].because == ("its condition holds, but this guideline is for Adults (18 years "
                                      "or older) and does not apply: age 4 years is below 18 years",)
