"""Patient input (contract section 4): every kind of rejection, unit conversions, null = absent.

Every rejection is checked twice: through the API (`engine.InputFactsError` whose message names
the fact) and through the CLI (exit 2, the fact named on stderr, nothing at all on stdout).
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import cli

GUIDELINE_BIN = Path(sys.executable).with_name("guideline")

# A realistic afebrile patient on chemotherapy, used as the background for single bad values.
BASE = {"anc": 0.8, "wbc": 2.4, "temperature": 37.1, "systolic_bp": 118, "age": 57, "hemoglobin": 10.4}


@pytest.fixture(autouse=True)
def _reuse_bundled_guideline(fast_cli: None) -> None:
    """These tests are about input handling: the CLI reuses the session's loaded guideline."""


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def evaluate_cli(text: str) -> tuple[int, str, str]:
    return run_cli(["evaluate", "-", "--format", "json"], stdin=text)


def reject(guideline: engine.Guideline, facts: Any, *fragments: str) -> list[str]:
    """The API refuses `facts`; every fragment appears in one message; returns the messages."""
    with pytest.raises(engine.InputFactsError) as info:
        guideline.evaluate(facts)
    assert info.value.exit_code == 2
    messages = [str(problem) for problem in info.value.problems]
    text = "\n".join(messages)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert str(info.value)  # printable
    return messages


def reject_cli(text: str, *fragments: str) -> str:
    rc, out, err = evaluate_cli(text)
    assert rc == 2, (rc, out, err)
    assert out == "", f"stdout must stay empty on bad input, got {out!r}"
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in stderr {err!r}"
    return err


# --- one bad value at a time ----------------------------------------------------------------------

BAD_VALUES = [
    # (id, fact, raw value, fragments the message must contain besides the fact name)
    ("unknown-name-typo", "temprature", 38.9, ["did you mean 'temperature'"]),
    ("unknown-name-typo-anc", "anc_count", 0.3, ["unknown"]),
    ("derived-given-as-input", "febrile", True, ["derived"]),
    ("derived-given-as-input-fn", "febrile_neutropenia", True, []),
    ("string-for-number", "anc", "0.3", ["number"]),
    ("int-for-boolean", "copd", 1, ["true or false"]),
    ("string-yes-for-boolean", "fever_sustained_1h", "yes", []),
    ("boolean-for-number", "age", True, ["number"]),
    ("number-for-enum", "symptom_burden", 3, ["none", "severe"]),
    ("enum-value-typo", "symptom_burden", "moderat", ["did you mean 'moderate'"]),
    ("enum-value-case", "tumor_type", "Solid", ["did you mean 'solid'"]),
    ("list-for-number", "anc", [0.3], []),
    ("anc-above-range", "anc", 101, ["range"]),
    ("temperature-above-range", "temperature", 46, ["range"]),
    ("temperature-below-range", "temperature", 24.9, ["range"]),
    ("age-negative", "age", -1, ["range"]),
    ("age-above-range", "age", 131, ["range"]),
    ("hemoglobin-below-range", "hemoglobin", 0.5, ["range"]),
    ("wbc-above-range", "wbc", 501, ["range"]),
    ("pct-above-range", "neutrophils_pct", 101, ["range"]),
    ("systolic-negative", "systolic_bp", -5, ["range"]),
    ("days-above-range", "expected_neutropenia_days", 366, ["range"]),
    ("converted-out-of-range", "temperature", {"value": 120, "unit": "[degF]"}, ["range"]),
    ("unknown-unit", "anc", {"value": 300, "unit": "mg"}, ["'mg'", "/uL", "10*9/L"]),
    ("unit-of-another-fact", "hemoglobin", {"value": 0.3, "unit": "/uL"}, ["'/uL'", "g/L"]),
    ("quantity-extra-key", "anc", {"value": 300, "unit": "/uL", "flag": "L"}, ["flag"]),
    ("quantity-missing-unit", "anc", {"value": 300}, ["unit"]),
    ("quantity-missing-value", "anc", {"unit": "/uL"}, ["value"]),
    ("quantity-string-value", "anc", {"value": "300", "unit": "/uL"}, ["number"]),
    ("quantity-null-unit", "anc", {"value": 0.3, "unit": None}, ["unit"]),
]


@pytest.mark.parametrize("fact, raw, fragments", [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_bad_value_rejected_by_api(guideline: engine.Guideline, fact: str, raw: Any, fragments: list[str]) -> None:
    facts = {**{k: v for k, v in BASE.items() if k != fact}, fact: raw}
    problems = reject(guideline, facts, fact, *fragments)
    assert len(problems) == 1, problems
    assert problems[0].startswith(fact), f"the message should lead with the fact: {problems[0]!r}"


@pytest.mark.parametrize("fact, raw, fragments", [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_bad_value_rejected_by_cli(fact: str, raw: Any, fragments: list[str]) -> None:
    facts = {**{k: v for k, v in BASE.items() if k != fact}, fact: raw}
    reject_cli(json.dumps(facts), fact, *fragments)


@pytest.mark.parametrize("fact, value", [("anc", 0), ("anc", 100), ("temperature", 25), ("temperature", 45),
                                         ("age", 0), ("age", 130), ("hemoglobin", 1), ("hemoglobin", 25)])
def test_range_bounds_are_inclusive(guideline: engine.Guideline, fact: str, value: float) -> None:
    result = guideline.evaluate({**BASE, fact: value})
    if fact in ("anc",):
        assert result.derived["anc"] == value


# --- JSON-level problems (CLI) -----------------------------------------------------------------------

@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_rejected_naming_the_fact(guideline: engine.Guideline, constant: str) -> None:
    text = f'{{"temperature": 38.9, "anc": {constant}, "age": 61}}'
    # API: Python's json gives float nan/inf; the engine must refuse it and name the fact
    reject(guideline, json.loads(text), "anc")
    # CLI: exit 2, nothing on stdout, and the message names the fact (contract section 4)
    reject_cli(text, "anc")


def test_overflowing_number_is_rejected_naming_the_fact(guideline: engine.Guideline) -> None:
    text = '{"anc": 1e400, "temperature": 38.9}'
    assert math.isinf(json.loads(text)["anc"])
    reject(guideline, json.loads(text), "anc")
    reject_cli(text, "anc")


@pytest.mark.parametrize("text, fragments", [
    ('{"anc": 0.3, "temperature": 38.9,}', ["JSON", "1:"]),
    ('{"anc": 0.3\n "temperature": 38.9}', ["JSON", "2:"]),
    ("{'anc': 0.3}", ["JSON"]),
    ("", ["JSON"]),
    ('{"anc": 0.3', ["JSON"]),
], ids=["trailing-comma", "missing-comma", "single-quotes", "empty", "truncated"])
def test_malformed_json(text: str, fragments: list[str]) -> None:
    reject_cli(text, *fragments)


@pytest.mark.parametrize("text, fragments", [
    ('[{"anc": 0.3, "temperature": 38.9}]', ["object"]),
    ('"anc"', ["object"]),
    ("0.3", ["object"]),
    ("null", ["object"]),
], ids=["array", "string", "number", "null"])
def test_json_that_is_not_an_object(guideline: engine.Guideline, text: str, fragments: list[str]) -> None:
    reject(guideline, json.loads(text), *fragments)
    reject_cli(text, *fragments)


def test_patient_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-patient.json"
    rc, out, err = run_cli(["evaluate", str(missing), "--format", "json"])
    assert rc == 2
    assert out == ""
    assert "no-such-patient.json" in err


def test_bad_input_through_the_real_command(tmp_path: Path) -> None:
    patient = tmp_path / "patient.json"
    patient.write_text('{"anc": 0.3, "temprature": 38.9}', encoding="utf-8")
    for argv in ([str(GUIDELINE_BIN)], [sys.executable, "-m", "engine"]):
        for fmt in ("json", "text"):
            proc = subprocess.run([*argv, "evaluate", str(patient), "--format", fmt],
                                  capture_output=True, text=True, timeout=60, check=False)
            assert proc.returncode == 2
            assert proc.stdout == ""
            assert "temprature" in proc.stderr and "did you mean 'temperature'" in proc.stderr


# --- several problems at once --------------------------------------------------------------------------

def test_every_problem_is_reported_at_once(guideline: engine.Guideline) -> None:
    facts = {"anc": "0.3", "temprature": 38.9, "copd": "no", "age": 200, "febrile": True,
             "symptom_burden": "moderat", "hemoglobin": {"value": 65, "unit": "mmol/L"}, "systolic_bp": 95}
    problems = reject(guideline, facts)
    named = {p.split(":", 1)[0] for p in problems}
    assert named == {"anc", "temprature", "copd", "age", "febrile", "symptom_burden", "hemoglobin"}, problems
    err = reject_cli(json.dumps(facts))
    for name in named:
        assert name in err
    assert len([line for line in err.splitlines() if line.strip()]) >= len(named)


# --- unit conversions (contract section 4) ---------------------------------------------------------------

@pytest.mark.parametrize("fact", ["anc", "wbc", "lymphocytes"])
@pytest.mark.parametrize("value, unit", [(300, "/uL"), (0.3, "10*3/uL"), (300, "10*6/L")])
def test_cell_count_units(guideline: engine.Guideline, fact: str, value: float, unit: str) -> None:
    facts = {"anc": 1.8, fact: {"value": value, "unit": unit}}
    derived = guideline.evaluate(facts).derived
    assert derived[fact] == 0.3  # exactly, in 10*9/L
    if fact == "anc":
        assert derived["neutropenia_grade"] == "severe"
    if fact == "wbc":
        assert derived["leukopenia"] is True
    if fact == "lymphocytes":
        assert derived["lymphopenia"] is True


def test_canonical_unit_as_quantity_equals_bare_number(guideline: engine.Guideline) -> None:
    quantity = guideline.evaluate({"anc": {"value": 0.3, "unit": "10*9/L"}, "temperature": {"value": 38.6, "unit": "Cel"}})
    bare = guideline.evaluate({"anc": 0.3, "temperature": 38.6})
    assert quantity.codes == bare.codes
    assert quantity.derived["anc"] == bare.derived["anc"] == 0.3
    assert quantity.derived["febrile_neutropenia"] is True


def test_anc_500_per_uL_is_exactly_the_threshold_not_below_it(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": {"value": 500, "unit": "/uL"}, "temperature": 38.9,
                                 "anc_expected_below_0_5_within_48h": False})
    assert result.derived["anc"] == 0.5
    assert result.derived["neutropenia_grade"] == "moderate"
    assert result.derived["febrile_neutropenia"] is False
    assert "fn-empirical-iv-antibiotics" not in result.codes


def test_anc_from_differential_with_wbc_per_uL(guideline: engine.Guideline) -> None:
    """No ANC reported: wbc 1500 /uL x (16 % + 4 % bands) = 0.3 x 10^9/L -> febrile neutropenia."""
    result = guideline.evaluate({"wbc": {"value": 1500, "unit": "/uL"}, "neutrophils_pct": 16, "bands_pct": 4,
                                 "temperature": {"value": 101.3, "unit": "[degF]"}})
    assert result.derived["wbc"] == 1.5
    assert result.derived["anc"] == 0.3
    assert result.derived["neutropenia_grade"] == "severe"
    assert result.derived["febrile_neutropenia"] is True
    assert "fn-empirical-iv-antibiotics" in result.codes


def test_reported_anc_takes_precedence_over_the_differential(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 1.2, "wbc": 3.0, "neutrophils_pct": 80, "temperature": 37.0})
    assert result.derived["anc"] == 1.2
    assert result.derived["neutropenia_grade"] == "mild"


@pytest.mark.parametrize("grams_per_litre, transfuse", [(65, True), (69, True), (70, False), (95, False)])
def test_hemoglobin_in_g_per_L(guideline: engine.Guideline, grams_per_litre: float, transfuse: bool) -> None:
    result = guideline.evaluate({"hemoglobin": {"value": grams_per_litre, "unit": "g/L"}, "anc": 1.1,
                                 "temperature": 36.9})
    assert result.derived["hemoglobin"] == grams_per_litre / 10
    assert ("transfuse-rbc" in result.codes) is transfuse


def test_hemoglobin_65_g_per_L_equals_6_5_g_per_dL(guideline: engine.Guideline) -> None:
    converted = guideline.evaluate({"hemoglobin": {"value": 65, "unit": "g/L"}, "anc": 1.1})
    bare = guideline.evaluate({"hemoglobin": 6.5, "anc": 1.1})
    assert converted.derived["hemoglobin"] == 6.5
    assert converted.codes == bare.codes
    assert "transfuse-rbc" in converted.codes


def test_100_4_degF_is_exactly_38_0_Cel(guideline: engine.Guideline) -> None:
    """38.0 exactly: fever then depends on the duration (38.0-38.2 with unknown duration)."""
    result = guideline.evaluate({"anc": 0.3, "temperature": {"value": 100.4, "unit": "[degF]"}})
    assert result.derived["temperature"] == 38.0
    assert result.derived.get("febrile") is None  # not "false": 37.999... would have made it false
    assert "fever_sustained_1h" in [m.fact for m in result.missing]
    assert "fn-empirical-iv-antibiotics" not in result.codes
    assert "afebrile-cause-evaluation" not in result.codes

    sustained = guideline.evaluate({"anc": 0.3, "temperature": {"value": 100.4, "unit": "[degF]"},
                                    "fever_sustained_1h": True})
    assert sustained.derived["febrile_neutropenia"] is True
    brief = guideline.evaluate({"anc": 0.3, "temperature": {"value": 100.4, "unit": "[degF]"},
                                "fever_sustained_1h": False})
    assert brief.derived["febrile"] is False


def test_101_3_degF_is_38_5_Cel_and_febrile(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"anc": 0.3, "temperature": {"value": 101.3, "unit": "[degF]"}})
    assert result.derived["temperature"] == 38.5
    assert result.derived["febrile"] is True
    assert result.derived["febrile_neutropenia"] is True
    assert {"fn-empirical-iv-antibiotics", "fn-obtain-cultures", "fn-never-delay-antibiotics"} <= set(result.codes)
    assert "fever_sustained_1h" not in [m.fact for m in result.missing]


def test_converted_inputs_appear_in_derived_in_canonical_units(guideline: engine.Guideline) -> None:
    facts = {"anc": {"value": 400, "unit": "/uL"}, "wbc": {"value": 1900, "unit": "/uL"},
             "lymphocytes": {"value": 0.6, "unit": "10*3/uL"}, "hemoglobin": {"value": 82, "unit": "g/L"},
             "temperature": {"value": 102.2, "unit": "[degF]"}, "systolic_bp": 104, "age": 49}
    derived = guideline.evaluate(facts).derived
    assert derived["anc"] == 0.4
    assert derived["wbc"] == 1.9
    assert derived["lymphocytes"] == 0.6
    assert derived["hemoglobin"] == 8.2
    assert derived["temperature"] == 39.0
    # the CLI shows the same canonical values
    rc, out, err = evaluate_cli(json.dumps(facts))
    assert rc == 0, err
    shown = json.loads(out)["derived"]
    assert {k: shown[k] for k in ("anc", "wbc", "lymphocytes", "hemoglobin", "temperature")} == \
        {"anc": 0.4, "wbc": 1.9, "lymphocytes": 0.6, "hemoglobin": 8.2, "temperature": 39.0}


# --- null means "not known" -------------------------------------------------------------------------------

LOW_RISK_FN = {"anc": 0.3, "temperature": 38.6, "symptom_burden": "mild", "systolic_bp": 124, "copd": False,
               "tumor_type": "solid", "dehydration_requiring_iv": False, "onset_setting": "outpatient", "age": 45,
               "clinically_stable_hours": 30, "on_fluoroquinolone_prophylaxis": False, "fever_resolved": True}


def _missing(result: engine.Result) -> list[str]:
    return [m.fact for m in result.missing]


@pytest.mark.parametrize("fact", ["temperature", "copd", "on_fluoroquinolone_prophylaxis", "symptom_burden",
                                  "systolic_bp"])
def test_null_is_the_same_as_absent(guideline: engine.Guideline, fact: str) -> None:
    with_null = guideline.evaluate({**LOW_RISK_FN, fact: None})
    without = guideline.evaluate({k: v for k, v in LOW_RISK_FN.items() if k != fact})
    assert with_null.to_dict() == without.to_dict()
    assert fact in _missing(with_null)


def test_null_boolean_is_never_read_as_false(guideline: engine.Guideline) -> None:
    known_false = guideline.evaluate(LOW_RISK_FN)
    assert "fn-oral-step-down" in known_false.codes  # needs on_fluoroquinolone_prophylaxis known false
    unknown = guideline.evaluate({**LOW_RISK_FN, "on_fluoroquinolone_prophylaxis": None})
    assert "fn-oral-step-down" not in unknown.codes
    assert "fn-oral-step-down" in next(m.needed_for for m in unknown.missing
                                       if m.fact == "on_fluoroquinolone_prophylaxis")


def test_null_mascc_item_leaves_the_score_open(guideline: engine.Guideline) -> None:
    full = guideline.evaluate({**LOW_RISK_FN, "copd": True, "age": 72})
    assert full.derived["mascc_score"] == 20  # 5 + 5 + 0 + 4 + 3 + 3 + 0
    assert full.derived["fn_risk"] == "high"
    open_ = guideline.evaluate({**LOW_RISK_FN, "copd": None, "age": 72})
    assert open_.derived.get("mascc_score") is None
    assert open_.derived["mascc_score_range"] == [20, 24]
    assert open_.derived["fn_risk"] == "undetermined"
    assert "copd" in _missing(open_)


def test_null_temperature_is_listed_in_missing_via_cli() -> None:
    rc, out, err = evaluate_cli('{"anc": 0.2, "temperature": null, "fever_sustained_1h": null}')
    assert rc == 0, err
    result = json.loads(out)
    assert result["derived"].get("febrile") is None
    assert result["derived"].get("febrile_neutropenia") is None
    missing = {m["fact"]: m["needed_for"] for m in result["missing"]}
    assert "temperature" in missing and "fever_sustained_1h" in missing
    assert "febrile" in missing["temperature"]
    assert result["recommendations"] == [] or all(
        r["code"] not in ("fn-empirical-iv-antibiotics", "afebrile-cause-evaluation") for r in result["recommendations"])


def test_a_fact_given_twice_in_the_json_is_rejected() -> None:
    """JSON keeps the last of two equal keys; a hidden ANC of 0.3 must not become 2.0 silently."""
    stderr = reject_cli('{"anc": 0.3, "temperature": 39.0, "anc": 2.0}', "anc", "twice")
    assert "twice" in stderr
