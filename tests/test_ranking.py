"""Missing data ranked by clinical weight (contract section 8), what to find out next in the text and
the CDS card, and the clinical wording of findings and reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once
from hypothesis import given, settings
from test_properties_patient import REF, examples, valid_patients

import engine
from engine import cli
from engine.cds import cards as _cards
from engine.model.content import Content
from engine.model.vocabulary import urgencies, urgency_rank
from engine.products import cases as _cases
from engine.products import next_steps as _steps
from engine.products import text as _text
from engine.run import ranking
from engine.run.result import Result

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def order_problems(result: Result, content: Content) -> list[str]:
    """Every way `result.missing` breaks the contract's order or its `decides` counts."""
    problems = []
    keys = []
    for m in result.missing:
        codes = [t for t in m.needed_for if t in content.catalogue]
        if m.decides.recommendations != len(codes):
            problems.append(f"{m.fact}: decides {m.decides.recommendations}, needed_for has {len(codes)} codes")
        most = min((content.catalogue[c].urgency for c in codes), key=urgency_rank, default=None)
        if m.decides.urgency != most:
            problems.append(f"{m.fact}: urgency {m.decides.urgency}, its most urgent code is {most}")
        if sum(n for _, n in m.decides.by_urgency) != len(codes):
            problems.append(f"{m.fact}: by_urgency {m.decides.by_urgency} does not add up to {len(codes)}")
        if not set(m.decides.derived) <= set(m.needed_for) & set(content.derived):
            problems.append(f"{m.fact}: decides derived {m.decides.derived} beyond needed_for")
        group = urgency_rank(most) if most else len(urgencies())
        keys.append((group, -len(codes), m.fact))
    for (before, after) in zip(keys, keys[1:]):
        if before >= after:
            problems.append(f"{before[2]} is listed before {after[2]}: {before} vs {after}")
    return problems


def patients() -> list[dict[str, Any]]:
    facts = [json.loads(path.read_text(encoding="utf-8")) for path in EXAMPLES]
    cases, problems = _cases.load_cases(engine.BUNDLED_GUIDELINE, engine.load())
    assert not problems
    return facts + [case.facts for case in cases]


def test_every_example_and_case_patient_is_ranked_as_the_contract_says(guideline: engine.Guideline) -> None:
    many = patients()
    assert len(many) > 100
    ranked_some = 0
    for facts in many:
        result = guideline.evaluate(facts)
        assert order_problems(result, guideline.content) == [], facts
        ranked_some += len(result.missing) > 1
    assert ranked_some > 20  # the property is not vacuous


@settings(max_examples=examples(25))
@given(valid_patients(REF))
def test_random_patients_are_ranked_as_the_contract_says(guideline: engine.Guideline, facts: dict[str, Any]) -> None:
    assert order_problems(guideline.evaluate(facts), guideline.content) == []


def test_rank_orders_by_most_urgent_then_count_then_name(guideline: engine.Guideline) -> None:
    needed = {"z_routine": {"fn-local-resistance"}, "a_derived_only": {"febrile", "applicability"},
              "b_immediate": {"fn-obtain-cultures", "fn-local-resistance"},
              "y_two_urgent": {"tki-hold", "cbc-monitoring-schedule", "applicability"},
              "c_one_urgent": {"transfuse-rbc"}, "x_one_urgent": {"transfuse-rbc"}}
    ranked = ranking.rank(needed, guideline.content)
    assert [m.fact for m in ranked] == ["b_immediate", "y_two_urgent", "c_one_urgent", "x_one_urgent",
                                        "z_routine", "a_derived_only"]
    by = {m.fact: m.decides.to_dict() for m in ranked}
    # "applicability" and derived facts decide no recommendation themselves.
    assert by["y_two_urgent"] == {"urgency": "urgent", "recommendations": 2,
                                  "by_urgency": {"urgent": 1, "routine": 1}, "derived": []}
    assert by["a_derived_only"] == {"urgency": None, "recommendations": 0, "by_urgency": {},
                                    "derived": ["febrile"]}


def test_missing_json_carries_decides(guideline: engine.Guideline) -> None:
    missing = guideline.evaluate({"anc": 0.4}).to_dict()["missing"]
    temperature = next(m for m in missing if m["fact"] == "temperature")
    assert temperature["decides"]["urgency"] == "immediate"
    assert temperature["decides"]["by_urgency"] == {"immediate": 5, "urgent": 4, "routine": 11}
    assert temperature["decides"]["recommendations"] == 20
    assert "febrile_neutropenia" in temperature["decides"]["derived"]
    assert [m["fact"] for m in missing[:2]] == ["fever_sustained_1h", "temperature"]  # a tie, by name


# --- text ---------------------------------------------------------------------------------------

def text_of(guideline: engine.Guideline, facts: dict[str, Any], everything: bool = False) -> str:
    return _text.evaluation(guideline, guideline.evaluate(facts), everything)


def section(text: str, title: str) -> list[str]:
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def test_the_text_leads_with_what_to_find_out_next(guideline: engine.Guideline) -> None:
    text = text_of(guideline, {"anc": 0.4})
    headers = [line for line in text.split("\n") if line and not line.startswith(" ")]
    after = headers[headers.index("FINDINGS") + 1]
    assert after.startswith("FIND OUT NEXT")
    first = " ".join(section(text, "FIND OUT NEXT")[1:4])
    # The two facts deciding exactly the same things are one question, led by the temperature
    # (more compiled rules test it: it can also rule fever out); JSON keeps the contract's order.
    assert " ".join(first.split()) == (
        "Measure the temperature, and find out whether a temperature of 38.0 °C or more lasted over an "
        "hour: it decides fever, febrile neutropenia, prophylaxis indicated and 2 more — 5 immediate, "
        "4 urgent and 11 routine recommendations (temperature, fever_sustained_1h)")
    missing = [m.fact for m in guideline.evaluate({"anc": 0.4}).missing]
    assert missing[:2] == ["fever_sustained_1h", "temperature"]  # tie broken by name (contract section 8)


def test_the_tail_is_folded_and_all_lists_every_fact(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 0.4})
    folded = section(_text.evaluation(guideline, result), "FIND OUT NEXT")
    shown = sum(len(group) for group in _steps.questions(guideline.program, result.missing)[:5])
    assert folded[-2:] == [f"  … and {len(result.missing) - shown} more; --all to list them",
                           "  (--what-if: what each value of these facts would add to or remove from the advice)"]
    listed = " ".join(section(_text.evaluation(guideline, result, everything=True), "FIND OUT NEXT"))
    assert "--all" not in listed
    listed = " ".join(listed.split())
    asked = _steps.questions(guideline.program, result.missing)
    assert all(f"({', '.join(m.fact for m in group)})" in listed for group in asked)
    assert sorted(m.fact for group in asked for m in group) == sorted(m.fact for m in result.missing)
    assert "Obtain the white cell count: it decides leukopenia (wbc)" in listed  # decides no recommendation


def test_evaluate_all_flag(fast_cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patient = tmp_path / "p.json"
    patient.write_text('{"anc": 0.4}', encoding="utf-8")
    assert cli.main(["evaluate", str(patient)]) == 0
    assert "--all to list them" in capsys.readouterr().out
    assert cli.main(["evaluate", str(patient), "--all"]) == 0
    out = capsys.readouterr().out
    assert "--all to list them" not in out and "(acinetobacter_infection, " in out


def test_a_patient_with_no_facts_is_told_so_and_asked_for_the_count_first(guideline: engine.Guideline) -> None:
    lines = text_of(guideline, {}).split("\n")
    assert lines[2].startswith("NOTE: no facts were given")
    find = section("\n".join(lines), "FIND OUT NEXT")
    assert find[1].startswith("  Obtain the absolute neutrophil count (ANC), and obtain the differential")


def test_undetermined_derived_facts_wait_instead_of_being_findings(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 2.5})
    assert result.to_dict()["derived"]["fn_risk"] == "undetermined"  # JSON as the contract says
    text = _text.evaluation(guideline, result)
    findings = " ".join(section(text, "FINDINGS"))
    assert "FN risk" not in findings and "undetermined" not in findings
    waiting = " ".join(" ".join(section(text, "NOT YET DECIDED")).split())
    assert "FN risk (MASCC) — waits for temperature, fever ≥ 38.0 °C over one hour" in waiting  # as asked
    assert "neutropenia grade: none" in findings


def test_findings_use_labels_and_say_what_low_risk_means(guideline: engine.Guideline) -> None:
    facts = json.loads((ROOT / "examples" / "febrile-neutropenia-low-risk.json").read_text(encoding="utf-8"))
    result = guideline.evaluate(facts)
    text = _text.evaluation(guideline, result)
    findings = " ".join(" ".join(section(text, "FINDINGS")).split())
    assert "febrile neutropenia: yes" in findings
    assert ("FN risk (MASCC): low — Low risk (MASCC 21 or more): about 6 % of such patients have complications "
            "and about 1 % die. [1]") in findings
    assert result.to_dict()["meanings"] == {"fn_risk": {
        "value": "low", "citations": [1],
        "text": "Low risk (MASCC 21 or more): about 6 % of such patients have complications and about 1 % die."}}
    assert guideline.evaluate({"anc": 0.4}).to_dict()["meanings"] == {}


def test_why_shows_every_cause(guideline: engine.Guideline) -> None:
    text = text_of(guideline, {"anc": 2.0, "burns": True, "hypovolemia": True, "systolic_bp": 80})
    block = " ".join(" ".join(section(text, "URGENT")).split())
    why = block[block.index("(fluid-resuscitation)"):]
    why = why[:why.index("]")]
    assert "burns is true" in why and "hypovolemia is true" in why and "hypotension is true" in why


def test_no_engineering_words_in_explanations(guideline: engine.Guideline) -> None:
    for path in EXAMPLES:
        result = guideline.evaluate(json.loads(path.read_text(encoding="utf-8")))
        dumped = json.dumps(result.to_dict(), ensure_ascii=False) + _text.evaluation(guideline, result)
        assert "rules for true" not in dumped, path.name
    explained = guideline.evaluate({"anc": 0.4}).explanations["profound_neutropenia"]
    assert explained == ("as none of its conditions holds: anc 0.4 ×10⁹/L ≥ 0.1 ×10⁹/L",)


# --- CDS ----------------------------------------------------------------------------------------

def test_the_find_out_next_card_lists_the_top_missing_facts_in_order(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 0.4})
    card = _cards.cards(result, guideline.content, _cards.CardContext("s", "h", "p"))[-1]
    assert card["indicator"] == "info" and card["summary"].startswith("Find out next: fever ≥ 38.0 °C over one "
                                                                      "hour, temperature, ")
    numbered = [line for line in card["detail"].split("\n") if line[:1].isdigit()]
    assert [line.split("**")[1] for line in numbered] == [_cards.md(m.fact) for m in result.missing[:5]]
    assert numbered[1].startswith("2. **temperature** (°C; LOINC 8310-5) — Measure the temperature: it decides ")
    assert "5 immediate, 4 urgent and 11 routine recommendations" in numbered[1]
    assert f"**Also missing** ({len(result.missing) - 5})" in card["detail"]


def test_no_find_out_next_card_when_nothing_is_missing(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 0.4})
    complete = Result(result.guideline, result.derived, result.recommendations, ())
    assert all("topic" in c["source"] for c in _cards.cards(complete, guideline.content,
                                                             _cards.CardContext("s", "h", "p")))


# --- cases --------------------------------------------------------------------------------------

def test_missing_first_fails_with_the_actual_start_and_names_are_checked(guideline: engine.Guideline,
                                                                         bundled_copy: Path) -> None:
    case = _cases.Case("c", {"anc": 0.4}, {"missing_first": ["temperature"]}, "f.yaml", 1)
    failures = _cases.run_case(guideline, case).failures
    assert failures == ["expected missing to start with [temperature]; it starts with "
                        "[fever_sustained_1h, temperature, on_fluoroquinolone_prophylaxis]"]
    good = _cases.Case("c", {"anc": 0.4}, {"missing_first": ["fever_sustained_1h", "temperature"]}, "f.yaml", 1)
    assert _cases.run_case(guideline, good).failures == []
    (bundled_copy / "cases" / "ranking.yaml").write_text(
        "cases:\n  - name: typo\n    facts: {anc: 0.4}\n    expect: {missing_first: [temperatur]}\n", encoding="utf-8")
    _, problems = _cases.load_cases(bundled_copy, guideline)
    assert [p.message for p in problems] == ["unknown input fact 'temperatur' (did you mean 'temperature'?)"]


def test_a_changed_meaning_is_a_minor_change_of_content(guideline: engine.Guideline, bundled_copy: Path) -> None:
    from engine.products.diff.semantic import semantic_diff

    replace_once(bundled_copy / "facts.yaml", "about 6 % of such", "about 7 % of such")
    changes = semantic_diff(guideline.content, engine.load(bundled_copy).content)
    assert [(c.key, c.field, c.level) for c in changes] == [("fn_risk", "meaning of low", "minor")]


def test_applicability_reads_as_whether_the_guideline_applies(guideline: engine.Guideline) -> None:
    from engine.products import next_steps
    from engine.run.result import MissingFact

    age = MissingFact("age", ("applicability", "mascc_score"),
                      ranking.decides(("applicability", "mascc_score"), guideline.content))
    assert next_steps.line(guideline.content, age) == "Record the patient's age: it decides MASCC score and " \
                                                      "whether the guideline applies"
