"""The `guideline` command (contract sections 1-3): evaluate / validate / test, JSON and text output.

Most runs are in-process (`engine.cli.main(argv, out=, err=, stdin=)`); a few run the real
`guideline` script and `python -m engine` to check they behave identically.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once

import engine
from engine import cli

GUIDELINE_BIN = Path(sys.executable).with_name("guideline")
# A group heading: the urgency in capitals, optionally decorated (== URGENT ==, URGENT:, ...).
HEADER = re.compile(r"[=#*\-\s]*(IMMEDIATE|URGENT|ROUTINE)[=#*:\-\s]*")
URGENCY_RANK = {"immediate": 0, "urgent": 1, "routine": 2}

# Contract section 6: code -> (kind, urgency). Binding for every consumer of the JSON.
CONTRACT_CODES = {
    "fn-assess-resuscitate": ("do", "immediate"), "fn-obtain-cultures": ("do", "immediate"),
    "fn-empirical-iv-antibiotics": ("do", "immediate"), "fn-never-delay-antibiotics": ("do-not", "immediate"),
    "fn-local-resistance": ("info", "routine"), "fn-add-aminoglycoside": ("do", "urgent"),
    "fn-add-vancomycin": ("do", "urgent"), "fn-no-routine-vancomycin": ("do-not", "routine"),
    "fn-add-macrolide": ("do", "urgent"), "fn-stop-fq-prophylaxis": ("do", "immediate"),
    "fn-no-oral-quinolone": ("do-not", "routine"), "fn-high-risk-inpatient": ("info", "urgent"),
    "fn-oral-step-down": ("consider", "routine"), "fn-early-discharge": ("consider", "routine"),
    "fn-daily-monitoring": ("do", "routine"), "prophylaxis-antimicrobial": ("do", "routine"),
    "prophylaxis-no-gut-decontamination": ("do-not", "routine"), "gcsf-consider": ("consider", "routine"),
    "drug-hold-offending-agent": ("do", "urgent"), "tki-hold": ("do", "urgent"), "tki-resume": ("do", "routine"),
    "marrow-examination": ("consider", "routine"), "cbc-monitoring-schedule": ("do", "routine"),
    "transfuse-rbc": ("do", "urgent"), "fluid-resuscitation": ("do", "urgent"), "symptom-control": ("do", "routine"),
    "cvc-remove": ("do", "urgent"), "cvc-retain": ("do-not", "routine"), "masked-infection-signs": ("info", "routine"),
    "infection-risk-lymphopenia": ("info", "routine"), "afebrile-cause-evaluation": ("do", "routine"),
}

# --- patients (contract section 4 names) ----------------------------------------------------------

ALL_FALSE = {name: False for name in (
    "copd", "prior_fungal_infection", "dehydration_requiring_iv", "on_corticosteroids",
    "on_fluoroquinolone_prophylaxis", "fever_resolved", "suspected_catheter_infection",
    "skin_soft_tissue_infection", "gram_positive_bacteremia", "bacteremia", "pneumonia", "neutropenia_symptomatic",
    "central_venous_catheter", "tunnel_infection", "persistent_bacteremia", "atypical_mycobacteria_infection",
    "candidemia", "acinetobacter_infection", "drug_induced_suspected", "on_tki", "tki_held", "burns",
    "hypovolemia", "nausea_vomiting", "diarrhea", "pain", "fever_sustained_1h",
    "anc_expected_below_0_5_within_48h")}

# 68-year-old with AML, day 10 after induction, fever 39.2 °C on the ward, hypotensive, line in situ.
# MASCC: severe 0 + hypotension 0 + no COPD 4 + haematological with prior fungal infection 0
# + dehydration 0 + inpatient 0 + age >= 60 0 = 4 -> high risk.
HIGH_RISK_FN: dict[str, Any] = {
    **ALL_FALSE,
    "anc": 0.05, "wbc": 0.6, "lymphocytes": 0.3, "hemoglobin": 6.5, "temperature": 39.2, "systolic_bp": 84,
    "age": 68, "symptom_burden": "severe", "tumor_type": "hematologic", "prior_fungal_infection": True,
    "dehydration_requiring_iv": True, "onset_setting": "inpatient", "clinically_stable_hours": 0,
    "on_fluoroquinolone_prophylaxis": True, "on_corticosteroids": True, "expected_neutropenia_days": 21,
    "suspected_catheter_infection": True, "pneumonia": True, "central_venous_catheter": True,
    "drug_induced_suspected": True, "cytopenia_persistent_weeks": 1, "nausea_vomiting": True,
    "neutropenia_symptomatic": True,
}
HIGH_RISK_FN_CODES = {
    "fn-assess-resuscitate", "fn-obtain-cultures", "fn-empirical-iv-antibiotics", "fn-never-delay-antibiotics",
    "fn-stop-fq-prophylaxis", "fn-add-aminoglycoside", "fn-add-vancomycin", "fn-add-macrolide",
    "fn-high-risk-inpatient", "drug-hold-offending-agent", "transfuse-rbc", "fluid-resuscitation",
    "fn-local-resistance", "fn-no-oral-quinolone", "fn-daily-monitoring", "gcsf-consider", "symptom-control",
    "cvc-retain", "masked-infection-signs", "infection-risk-lymphopenia",
}

# 45-year-old with breast cancer, fever 38.6 °C at home, well, stable for 30 h after admission.
# MASCC: mild 5 + no hypotension 5 + no COPD 4 + solid 4 + no dehydration 3 + outpatient 3 + < 60 2 = 26.
LOW_RISK_FN: dict[str, Any] = {
    **ALL_FALSE,
    "anc": 0.3, "wbc": 1.1, "lymphocytes": 1.2, "hemoglobin": 11.2, "temperature": 38.6, "systolic_bp": 124,
    "age": 45, "symptom_burden": "mild", "tumor_type": "solid", "onset_setting": "outpatient",
    "clinically_stable_hours": 30, "fever_resolved": True, "expected_neutropenia_days": 5,
    "cytopenia_persistent_weeks": 0,
}
LOW_RISK_FN_CODES = {
    "fn-assess-resuscitate", "fn-obtain-cultures", "fn-empirical-iv-antibiotics", "fn-never-delay-antibiotics",
    "fn-local-resistance", "fn-no-routine-vancomycin", "fn-oral-step-down", "fn-early-discharge",
    "fn-daily-monitoring", "gcsf-consider",
}

# 52-year-old with lymphoma, afebrile, ANC 0.2 expected to last 10 days after chemotherapy.
AFEBRILE_PROPHYLAXIS: dict[str, Any] = {
    "anc": 0.2, "wbc": 0.9, "lymphocytes": 1.1, "hemoglobin": 9.4, "temperature": 37.2,
    "fever_sustained_1h": False, "expected_neutropenia_days": 10, "age": 52, "systolic_bp": 122,
}

# 60-year-old with CML on a TKI, ANC 0.8, afebrile.
TKI_PATIENT: dict[str, Any] = {"anc": 0.8, "wbc": 2.6, "temperature": 36.9, "on_tki": True, "tki_held": False,
                               "age": 60, "hemoglobin": 11.0}

PATIENTS = {"high-risk-fn": HIGH_RISK_FN, "low-risk-fn": LOW_RISK_FN, "afebrile-prophylaxis": AFEBRILE_PROPHYLAXIS,
            "tki": TKI_PATIENT, "incomplete": {"anc": 0.4, "age": 63, "on_corticosteroids": True}}


# --- helpers --------------------------------------------------------------------------------------

def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def one_json_document(text: str) -> dict[str, Any]:
    """Exactly one JSON document on stdout (whitespace around it allowed)."""
    decoder = json.JSONDecoder()
    stripped = text.strip()
    document, end = decoder.raw_decode(stripped)
    assert end == len(stripped), f"extra output after the JSON document: {stripped[end:end + 80]!r}"
    assert isinstance(document, dict)
    return document


def check_result_shape(doc: dict[str, Any], guideline: engine.Guideline) -> None:
    assert {"guideline", "derived", "recommendations", "missing"} <= set(doc)
    g = doc["guideline"]
    assert g["id"] == "neutropenia"
    assert g["version"] == guideline.version
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", g["digest"]), g["digest"]
    assert isinstance(doc["derived"], dict)
    codes = [r["code"] for r in doc["recommendations"]]
    assert len(codes) == len(set(codes)), f"a code appears twice: {codes}"
    for rec in doc["recommendations"]:
        assert {"code", "kind", "urgency", "text", "rule", "citations", "because"} <= set(rec)
        assert (rec["kind"], rec["urgency"]) == CONTRACT_CODES[rec["code"]], rec["code"]
        assert isinstance(rec["text"], str) and rec["text"].strip()
        assert isinstance(rec["rule"], str) and rec["rule"]
        assert rec["citations"] and all(isinstance(c, str) and c for c in rec["citations"])
        assert rec["because"] and all(isinstance(b, str) and b for b in rec["because"])
    order = [(URGENCY_RANK[r["urgency"]], r["code"]) for r in doc["recommendations"]]
    assert order == sorted(order), f"recommendations not ordered by urgency then code: {codes}"
    facts = [m["fact"] for m in doc["missing"]]
    assert len(facts) == len(set(facts))
    for m in doc["missing"]:
        assert set(m) >= {"fact", "needed_for"}
        assert m["fact"] in guideline.content.facts, m["fact"]  # an input fact
        assert m["needed_for"] and all(isinstance(x, str) for x in m["needed_for"])


@pytest.fixture
def patient_file(tmp_path: Path):
    def write(facts: dict[str, Any], name: str = "patient.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(facts, indent=2), encoding="utf-8")
        return path
    return write


# --- evaluate: JSON -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PATIENTS))
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_evaluate_json(fast_cli: None, guideline: engine.Guideline, patient_file, name: str, source: str) -> None:
    facts = PATIENTS[name]
    argv = ["evaluate", str(patient_file(facts)) if source == "file" else "-", "--format", "json"]
    rc, out, err = run_cli(argv, stdin=json.dumps(facts) if source == "stdin" else "")
    assert rc == 0, err
    doc = one_json_document(out)
    check_result_shape(doc, guideline)
    assert doc == guideline.evaluate(facts).to_dict()


def test_result_to_dict_equals_cli_json_of_a_fresh_process(guideline: engine.Guideline, patient_file) -> None:
    path = patient_file(HIGH_RISK_FN)
    proc = subprocess.run([str(GUIDELINE_BIN), "evaluate", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert one_json_document(proc.stdout) == engine.load().evaluate(HIGH_RISK_FN).to_dict()
    assert one_json_document(proc.stdout) == guideline.evaluate(HIGH_RISK_FN).to_dict()


def test_high_risk_febrile_neutropenia(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(HIGH_RISK_FN)
    d = result.derived
    assert (d["febrile"], d["febrile_neutropenia"], d["hypotension"]) == (True, True, True)
    assert d["neutropenia_grade"] == "severe" and d["profound_neutropenia"] is True
    assert (d["mascc_score"], d["mascc_score_range"], d["fn_risk"]) == (4, [4, 4], "high")
    assert d["prolonged_neutropenia"] is True and d["lymphopenia"] is True
    assert set(result.codes) == HIGH_RISK_FN_CODES
    assert result.missing == ()  # every input that matters is given
    # immediate actions first; the "do not delay" warning among them
    immediate = [r.code for r in result.recommendations if r.urgency == "immediate"]
    assert immediate == sorted(["fn-assess-resuscitate", "fn-obtain-cultures", "fn-empirical-iv-antibiotics",
                                "fn-never-delay-antibiotics", "fn-stop-fq-prophylaxis"])


def test_low_risk_febrile_neutropenia(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(LOW_RISK_FN)
    d = result.derived
    assert (d["mascc_score"], d["mascc_score_range"], d["fn_risk"]) == (26, [26, 26], "low")
    assert d["prolonged_neutropenia"] is False
    assert set(result.codes) == LOW_RISK_FN_CODES
    assert result.missing == ()


def test_recommendation_explains_itself(guideline: engine.Guideline) -> None:
    rec = next(r for r in guideline.evaluate(HIGH_RISK_FN).to_dict()["recommendations"]
               if r["code"] == "fn-add-aminoglycoside")
    because = "\n".join(rec["because"])
    for token in ("fn_risk", "febrile_neutropenia", "mascc"):
        assert token in because, because
    assert rec["rule"] in because


def test_afebrile_prophylaxis_patient(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(AFEBRILE_PROPHYLAXIS)
    assert result.derived["febrile"] is False
    assert result.derived["febrile_neutropenia"] is False  # false and anything is false
    assert result.derived.get("mascc_score") is None  # MASCC applies only to febrile neutropenia
    assert {"prophylaxis-antimicrobial", "prophylaxis-no-gut-decontamination", "afebrile-cause-evaluation",
            "gcsf-consider"} <= set(result.codes)
    assert not any(code.startswith("fn-") for code in result.codes)


def test_tki_patient(guideline: engine.Guideline) -> None:
    result = guideline.evaluate(TKI_PATIENT)
    assert {"tki-hold", "cbc-monitoring-schedule", "afebrile-cause-evaluation"} <= set(result.codes)
    assert "tki-resume" not in result.codes
    recovered = guideline.evaluate({**TKI_PATIENT, "anc": 1.6, "tki_held": True})
    assert "tki-resume" in recovered.codes and "tki-hold" not in recovered.codes


# --- evaluate: text -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["high-risk-fn", "low-risk-fn", "afebrile-prophylaxis"])
def test_evaluate_text_groups_by_urgency(fast_cli: None, guideline: engine.Guideline, patient_file,
                                         name: str) -> None:
    facts = PATIENTS[name]
    rc, out, err = run_cli(["evaluate", str(patient_file(facts))])  # text is the default
    assert rc == 0, err
    assert not out.lstrip().startswith("{")
    result = guideline.evaluate(facts)
    lines = out.splitlines()
    headers = [i for i, line in enumerate(lines) if HEADER.fullmatch(line.strip())]
    names = [HEADER.fullmatch(lines[i].strip()).group(1).lower() for i in headers]
    expected_groups = [u for u in ("immediate", "urgent", "routine") if any(r.urgency == u for r in result.recommendations)]
    assert names == expected_groups, out
    bounds = dict(zip(names, [(headers[i], headers[i + 1] if i + 1 < len(headers) else len(lines))
                              for i in range(len(headers))]))
    for rec in result.recommendations:
        start, end = bounds[rec.urgency]
        where = [i for i, line in enumerate(lines) if f"({rec.code})" in line]
        assert len(where) == 1, f"{rec.code} should be listed exactly once"
        assert start < where[0] < end, f"{rec.code} is not under {rec.urgency.upper()}"
        if rec.kind == "do-not":
            assert "DO NOT" in lines[where[0]], lines[where[0]]
        else:
            assert "DO NOT" not in lines[where[0]], lines[where[0]]


def test_text_marks_do_not_and_lists_missing_data(fast_cli: None) -> None:
    facts = {"anc": 0.3, "temperature": 38.8, "age": 70}
    rc, out, err = run_cli(["evaluate", "-"], stdin=json.dumps(facts))
    assert rc == 0, err
    never_delay = next(line for line in out.splitlines() if "(fn-never-delay-antibiotics)" in line)
    assert "DO NOT" in never_delay
    assert "FIND OUT NEXT" in out and "(systolic_bp" in out  # the first missing MASCC item, named
    rc, out, err = run_cli(["evaluate", "-", "--all"], stdin=json.dumps(facts))
    assert rc == 0 and "symptom_burden" in out  # --all lists every one


# --- evaluate: options ------------------------------------------------------------------------------

def test_guideline_option_uses_the_given_folder(bundled_copy: Path, patient_file) -> None:
    path = str(patient_file(LOW_RISK_FN))
    rc, default_out, err = run_cli(["evaluate", path, "--format", "json"])
    assert rc == 0, err
    rc, copy_out, err = run_cli(["evaluate", path, "--format", "json", "--guideline", str(bundled_copy)])
    assert rc == 0, err
    # same content in another folder: same result, same digest
    assert one_json_document(copy_out) == one_json_document(default_out)

    # a comment does not change the content; a new version does
    replace_once(bundled_copy / "guideline.yaml", "\nversion: ", "\n# a comment only\nversion: ")
    rc, commented, err = run_cli(["evaluate", path, "--format", "json", "--guideline", str(bundled_copy)])
    assert one_json_document(commented)["guideline"] == one_json_document(default_out)["guideline"]
    replace_once(bundled_copy / "guideline.yaml", "\nversion: ", "\nversion: 9.9.9-test\n# was: ")
    rc, changed, err = run_cli(["evaluate", path, "--format", "json", "--guideline", str(bundled_copy)])
    assert rc == 0, err
    g = one_json_document(changed)["guideline"]
    assert g["version"] == "9.9.9-test"
    assert g["digest"] != one_json_document(default_out)["guideline"]["digest"]


def test_guideline_option_with_missing_folder(tmp_path: Path) -> None:
    rc, out, err = run_cli(["evaluate", "-", "--guideline", str(tmp_path / "nowhere"), "--format", "json"],
                           stdin='{"anc": 0.3}')
    assert rc == 2
    assert out == ""
    assert "nowhere" in err


# --- validate and test ----------------------------------------------------------------------------------

def test_validate_table(bundled_copy: Path, tmp_path: Path) -> None:
    assert run_cli(["validate"])[0] == 0
    assert run_cli(["validate", str(bundled_copy)])[0] == 0
    assert run_cli(["validate", str(tmp_path / "nowhere")])[0] == 2
    (bundled_copy / "facts.yaml").unlink()
    rc, out, err = run_cli(["validate", str(bundled_copy)])
    assert rc == 2
    assert re.search(r"facts\.yaml:1:1: missing-file: ", out + err)


def test_test_command_on_bundled_guideline(fast_cli: None) -> None:
    rc, out, err = run_cli(["test"])
    assert rc == 0, out + err
    assert "PASS" in out and "FAIL" not in out
    assert re.search(r"rule coverage: \d+/\d+", out)


def _add_case(folder: Path, text: str) -> None:
    (folder / "cases" / "zz-tests.yaml").write_text("cases:\n" + text, encoding="utf-8")


def test_test_command_reports_a_failing_case(bundled_copy: Path) -> None:
    _add_case(bundled_copy, "  - name: Low-risk patient wrongly expected to be high risk\n"
                            f"    facts: {json.dumps(LOW_RISK_FN)}\n"
                            "    expect:\n      fires: [fn-high-risk-inpatient]\n")
    rc, out, err = run_cli(["test", str(bundled_copy)])
    assert rc == 1, out + err
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fail_lines) == 1 and "wrongly expected" in fail_lines[0]
    assert "fn-high-risk-inpatient" in out


@pytest.mark.parametrize("case_text, fragment", [
    ("  - name: Typo in an expected code\n    facts: {anc: 0.3}\n    expect:\n      fires: [fn-empirical-iv-antibiotic]\n",
     "unknown-code"),
    ("  - name: Bad facts\n    facts: {anc: 0.3, temprature: 38.5}\n    expect:\n      fires: [fn-obtain-cultures]\n",
     "temprature"),
    ("  - name: No expectations key\n    facts: {anc: 0.3}\n", "missing-key"),
    (("  - name: Typo in an expected derived fact\n    facts: {anc: 0.3}\n    expect:\n"
      "      derived: {neutropenia_grad: severe}\n"), "neutropenia_grad"),
    (("  - name: Same name\n    facts: {anc: 0.3}\n    expect:\n      derived: {neutropenia_grade: severe}\n"
      "  - name: Same name\n    facts: {anc: 1.2}\n    expect:\n      derived: {neutropenia_grade: mild}\n"),
     "duplicate-id"),
], ids=["unknown-code", "bad-input", "schema", "unknown-derived-fact", "duplicate-case-name"])
def test_test_command_with_a_broken_case_file(bundled_copy: Path, case_text: str, fragment: str) -> None:
    _add_case(bundled_copy, case_text)
    rc, out, err = run_cli(["test", str(bundled_copy)])
    assert rc == 2, out + err
    assert "zz-tests.yaml" in out + err and fragment in out + err


def test_test_command_with_an_invalid_guideline(bundled_copy: Path) -> None:
    (bundled_copy / "catalogue.yaml").unlink()
    rc, out, err = run_cli(["test", str(bundled_copy)])
    assert rc == 2
    assert "catalogue.yaml" in out + err


def test_test_command_min_coverage(fast_cli: None) -> None:
    rc, _, err = run_cli(["test", "--min-coverage", "101"])
    assert rc == 1
    assert "coverage" in err


# --- usage and internal errors ------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["evaluate"], ["evaluate", "-", "--format", "xml"],
                                  ["validate", "a", "b"], ["evaluate", "-", "--unknown-flag"]],
                         ids=["no-command", "unknown-command", "evaluate-without-file", "bad-format",
                              "validate-two-dirs", "unknown-flag"])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc, out, err = run_cli(argv, stdin='{"anc": 0.3}')
    captured = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert "usage" in (err + captured.err).lower()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(["--help"])
    assert rc == 0
    assert "evaluate" in out + capsys.readouterr().out


def test_internal_error_exits_1_with_nothing_on_stdout(fast_cli: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, facts):
        raise engine.RuleEngineError("simulated failure inside durable_rules")
    monkeypatch.setattr(engine.Guideline, "evaluate", broken)
    rc, out, err = run_cli(["evaluate", "-", "--format", "json"], stdin='{"anc": 0.3, "temperature": 38.9}')
    assert rc == 1
    assert out == ""
    assert "simulated failure" in err


# --- the real commands: `guideline` and `python -m engine` agree ----------------------------------------------

@pytest.mark.parametrize("args, stdin, rc", [
    (["evaluate", "-", "--format", "json"], json.dumps(LOW_RISK_FN), 0),
    (["evaluate", "-"], json.dumps(HIGH_RISK_FN), 0),
    (["evaluate", "-", "--format", "json"], '{"anc": 0.3, "temprature": 38.9}', 2),
    (["validate"], "", 0),
    (["frobnicate"], "", 2),
], ids=["evaluate-json", "evaluate-text", "bad-input", "validate", "usage"])
def test_script_and_module_behave_identically(args: list[str], stdin: str, rc: int) -> None:
    runs = [subprocess.run([*prefix, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)
            for prefix in ([str(GUIDELINE_BIN)], [sys.executable, "-m", "engine"])]
    script, module = runs
    assert script.returncode == module.returncode == rc, (script.stderr, module.stderr)
    assert script.stdout == module.stdout
    assert script.stderr.replace("__main__.py", "guideline") == module.stderr.replace("__main__.py", "guideline")
    if rc == 0 and "json" in args:
        check_result_shape(one_json_document(script.stdout), engine.load())
    if rc != 0:
        assert script.stdout == ""


# --- one way to name the guideline folder ------------------------------------------------------------

FOLDER_COMMANDS = {  # command -> extra arguments; every command that reads a guideline
    "evaluate": ["-", "--format", "json"], "validate": [], "test": [], "release": [],
    "render": ["--format", "markdown"], "diff": ["--rev", "HEAD.."],
    "serve": ["--dev-no-auth", "--port", "0"],  # the guideline is loaded before anything is bound
}


def test_every_command_that_reads_a_guideline_takes_the_flag() -> None:
    parser = cli._parser()
    for name, extra in FOLDER_COMMANDS.items():
        args = parser.parse_args([name, "--guideline", "some/dir", *extra])
        assert args.guideline == "some/dir", name


@pytest.mark.parametrize("command", ["validate", "test", "release", "render", "evaluate", "serve"])
def test_guideline_flag_names_the_folder(command: str, bundled_copy: Path) -> None:
    """A broken copy named by --guideline is the one read: its problem is reported, exit 2."""
    (bundled_copy / "facts.yaml").unlink()
    rc, out, err = run_cli([command, "--guideline", str(bundled_copy), *FOLDER_COMMANDS[command]],
                           stdin='{"anc": 0.3}')
    assert rc == 2, out + err
    assert "facts.yaml" in out + err and "missing-file" in out + err


def test_diff_guideline_flag_is_the_rev_folder(tmp_path: Path) -> None:
    # Not a git repository: the folder named by --guideline is the one --rev looked for.
    (tmp_path / "g").mkdir()
    rc, _, err = run_cli(["diff", "--rev", "HEAD..", "--guideline", str(tmp_path / "g")])
    assert rc == 2 and f"{tmp_path / 'g'}: not inside a git repository" in err
    rc, _, err = run_cli(["diff", str(tmp_path), str(tmp_path), "--guideline", str(tmp_path / "g")])
    assert rc == 2 and "--guideline DIR goes with --rev" in err and "usage: guideline diff" in err


@pytest.mark.parametrize("command", ["validate", "test", "release", "render", "diff"])
def test_positional_and_flag_with_different_folders_is_a_usage_error(command: str, bundled_copy: Path,
                                                                     tmp_path: Path) -> None:
    extra = ["--rev", "HEAD.."] if command == "diff" else []
    rc, out, err = run_cli([command, str(bundled_copy), "--guideline", str(tmp_path / "other"), *extra])
    assert rc == 2 and out == ""
    assert f"usage: guideline {command}" in err
    assert f"guideline {command}: error: the guideline folder is given twice" in err
    assert str(bundled_copy) in err and str(tmp_path / "other") in err


def test_positional_and_flag_naming_the_same_folder_agree(fast_cli: None) -> None:
    folder = str(engine.BUNDLED_GUIDELINE)
    rc, out, err = run_cli(["validate", folder, "--guideline", folder + "/"])
    assert rc == 0, err
    assert run_cli(["validate", "--guideline", folder])[1] == out


def test_validate_and_test_count_the_same_rules_and_scores(fast_cli: None, guideline: engine.Guideline) -> None:
    rules, scores = len(guideline.content.rules), len(guideline.content.scores)
    _, validated, _ = run_cli(["validate"])
    _, tested, _ = run_cli(["test"])
    assert f", {rules} rules, {scores} score{'s' if scores != 1 else ''}, " in validated
    assert f"rule coverage: {rules}/{rules} rules and {scores}/{scores} score{'s' if scores != 1 else ''} " in tested


def test_help_lists_every_command_once(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(["--help"])
    out += capsys.readouterr().out
    assert rc == 0
    for command in ("evaluate", "validate", "test", "release", "audit verify", "diff", "render", "serve"):
        assert len(re.findall(rf"^  {command}\s", out, re.M)) == 1, (command, out)
