"""`guideline check`: the z3 search proved against brute force on the real engine, findings, CLI."""

from __future__ import annotations

import io
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import z3

import engine
from engine.check.conflicts import conflict_pairs
from engine.cli import main
from engine.products.check.encode import Encoding, real
from engine.products.check.probe import probe_code, probe_guideline
from engine.products.check.report import check
from engine.run.input import check_facts
from tests.conftest import replace_once

FIXTURE = Path(__file__).parent / "fixtures" / "check"

# Every class of every fact of the fixture, unknown (None) included: n at and between every
# threshold (2, 3, 5, 6, 8) and at its range ends.
CLASSES: dict[str, list[Any]] = {
    "n": [None, 0, 1, 2, 2.5, 3, 4, 5, 5.5, 6, 7, 8, 9, 10],
    "b": [None, True, False],
    "w": [None, True, False],
    "k": [None, "red", "green", "blue"],
}


@pytest.fixture(scope="module")
def fixture() -> engine.Guideline:
    return engine.load(FIXTURE)


def _patients() -> list[dict[str, Any]]:
    names = list(CLASSES)
    return [{n: v for n, v in zip(names, values) if v is not None}
            for values in itertools.product(*(CLASSES[n] for n in names))]


@pytest.fixture(scope="module")
def brute(fixture: engine.Guideline) -> list[tuple[dict[str, Any], set[str], set[str], set[str]]]:
    """(patient, codes, probe codes, rules fired) for every patient of the fixture."""
    probed = probe_guideline(fixture)
    out = []
    for patient in _patients():
        result, probe = fixture.evaluate(patient), probed.evaluate(patient)
        out.append((patient, set(result.codes), set(probe.codes), set(result.rules_fired)))
    return out


def _found(fixture: engine.Guideline, kind: str) -> list[Any]:
    return [f for f in check(fixture).findings if f.kind == kind]


def test_conflicts_match_brute_force(fixture: engine.Guideline, brute: list[Any]) -> None:
    pairs = conflict_pairs(fixture.content)
    assert pairs == [("r-mid", "r-risk-low"), ("r-risk-high", "r-risk-low")]
    possible = {pair for pair in pairs if any(set(pair) <= codes for _, codes, _, _ in brute)}
    assert {f.codes for f in _found(fixture, "conflict")} == possible == {("r-mid", "r-risk-low")}


def test_gaps_match_brute_force(fixture: engine.Guideline, brute: list[Any]) -> None:
    expected = fixture.content.guidance_expected
    possible = {e.description for i, e in enumerate(expected)
                if any(probe_code(i) in probe and not codes for _, codes, probe, _ in brute)}
    assert {f.expectation for f in _found(fixture, "gap")} == possible == {"patients with b"}


def test_dead_rules_match_brute_force(fixture: engine.Guideline, brute: list[Any]) -> None:
    fired = set().union(*(rules for _, _, _, rules in brute))
    never = {r.id for r in fixture.content.rules if r.id not in fired}
    assert {f.rule for f in _found(fixture, "dead")} == never == {"r-dead"}


def test_shadowed_rule_matches_brute_force(fixture: engine.Guideline, brute: list[Any]) -> None:
    # r-low-red fires only for patients for whom r-low fires too; r-low fires alone for some.
    shadowed = {rid for rid, other in (("r-low-red", "r-low"), ("r-low", "r-low-red"))
                if any(rid in rules for *_, rules in brute)
                and all(other in rules for *_, rules in brute if rid in rules)}
    assert {f.rule for f in _found(fixture, "shadowed") if f.fact is None} == shadowed == {"r-low-red"}


def test_encoding_gives_each_patient_the_engines_codes(fixture: engine.Guideline, brute: list[Any]) -> None:
    """The encoding, with the inputs fixed, has exactly the engine's codes for every patient."""
    probed = probe_guideline(fixture)
    _agrees(probed, [(p, codes | probe) for p, codes, probe, _ in brute])


def _derived_state(enc: Encoding, guideline: engine.Guideline, patient: dict[str, Any]) -> list[Any]:
    """z3 formulas that hold exactly when each derived fact is as the engine reported it."""
    derived = guideline.evaluate(patient).derived
    out = []
    for name, spec in guideline.content.derived.items():
        if spec.type == "range":  # the score's [lo, hi], checked through the score's own fact
            continue
        fact = enc.facts[name]
        value = derived.get(name)
        if name not in derived:
            out.append(fact.na)  # not applicable (a fact no rule resolved fails the evaluation)
        elif value is None or value == spec.undetermined_label:
            out.append(fact.undetermined)
        elif spec.type == "enum":
            out.append(z3.And(fact.known, fact.choices[value]))
        else:
            out.append(z3.And(fact.known, fact.value == (z3.BoolVal(value) if isinstance(value, bool) else real(value))))
    return out


def _agrees(guideline: engine.Guideline, patients: list[tuple[dict[str, Any], set[str]]]) -> None:
    enc = Encoding(guideline.content, guideline.program)
    solver = z3.Solver()
    solver.add(*enc.constraints)
    fires = {code: enc.code_fires(code) for code in guideline.content.catalogue}
    for patient, codes in patients:
        fixed = []
        for name, var in enc.inputs.items():
            if name not in patient:
                fixed.append(z3.Not(var.known))
            elif var.choices:
                fixed += [var.known, var.choices[patient[name]]]
            else:
                value = patient[name]
                fixed += [var.known, var.value == (z3.BoolVal(value) if isinstance(value, bool) else real(value))]
        # The engine's codes and derived facts must be forced: no other outcome is consistent.
        expected = [formula if code in codes else z3.Not(formula) for code, formula in fires.items()]
        expected += _derived_state(enc, guideline, patient)
        if solver.check(*fixed, z3.Not(z3.And(expected))) != z3.unsat:
            model = solver.model()
            wrong = [e for e in expected if not z3.is_true(model.eval(e, model_completion=True))]
            raise AssertionError(f"{patient}: the encoding allows {wrong} to differ from the engine")


def test_encoding_agrees_with_the_engine_on_every_bundled_case(guideline: engine.Guideline) -> None:
    import yaml

    patients = []
    for path in sorted((engine.BUNDLED_GUIDELINE / "cases").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            facts, _ = check_facts(guideline.content, case["facts"])
            patients.append((facts, set(guideline.evaluate(facts).codes)))
    assert len(patients) > 100
    _agrees(guideline, patients)


def test_unread_and_shadowed_threshold(fixture: engine.Guideline) -> None:
    report = check(fixture)
    unread = [f for f in report.findings if f.kind == "unread"]
    assert [(f.fact, f.accepted is not None) for f in unread] == [("high_n", True)]
    threshold = [f for f in report.findings if f.kind == "shadowed" and f.fact]
    assert [(f.rule, f.fact) for f in threshold] == [("r-shadow", "n"), ("r-any", "n")]
    assert "'n lt 5' is decided by 'n lt 3' beside it (in the same 'all')" in threshold[0].message
    assert "'n lt 2' is decided by 'n le 3' beside it (in the same 'any')" in threshold[1].message
    assert threshold[0].locations[0].startswith(str(FIXTURE.relative_to(Path.cwd())) + "/rules/rules.yaml:")


def test_witnesses_are_small_and_round(fixture: engine.Guideline) -> None:
    (conflict,) = _found(fixture, "conflict")
    # n strictly inside [3, 6) and round; the fewest facts (k may be red or green: both fit).
    assert conflict.witness is not None and conflict.witness.pop("k") in ("red", "green")
    assert conflict.witness == {"b": True, "n": 4}
    assert set(conflict.confirmed) >= {"r-mid", "r-risk-low"}
    (gap,) = _found(fixture, "gap")
    assert gap.witness == {"b": True} and gap.confirmed == ()


def _run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue() + err.getvalue()


def test_cli_json_shape_and_exit_codes(tmp_path: Path) -> None:
    code, out = _run("check", str(FIXTURE), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert {"findings", "open", "accepted", "stale_decisions", "guideline"} <= set(data)
    for finding in data["findings"]:
        assert {"kind", "codes", "witness", "locations", "message"} <= set(finding)
        assert all(loc.count(":") >= 2 for loc in finding["locations"])
    assert data["open"] == 6 and data["accepted"] == 1
    code, out = _run("check", "tests/fixtures/kleene")
    assert code == 0 and "no finding" in out
    broken = tmp_path / "broken"
    broken.mkdir()
    code, out = _run("check", str(broken))
    assert code == 2


def test_every_finding_accepted_exits_0_and_a_stale_decision_exits_1(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "fx"
    shutil.copytree(FIXTURE, folder)
    decisions = """decisions:
  - {kind: unread, fact: high_n, reason: reported for the reader only}
  - {kind: conflict, codes: [r-risk-low, r-mid], reason: editors accept}
  - {kind: gap, expectation: patients with b, reason: the source is silent}
  - {kind: dead, rule: r-dead, reason: kept as a test}
  - {kind: shadowed, rule: r-low-red, reason: kept as a test}
  - {kind: shadowed, fact: n, rule: r-shadow, reason: kept as a test}
  - {kind: shadowed, fact: n, rule: r-any, reason: kept as a test}
"""
    replace_once(folder / "cases" / "cases.yaml", """decisions:
  - kind: unread
    fact: high_n
    reason: reported for the reader only
""", decisions)
    code, out = _run("check", str(folder))
    assert code == 0, out
    assert "conflict [accepted]: r-mid + r-risk-low" in out and "editors accept" in out
    replace_once(folder / "cases" / "cases.yaml", "cases:\n", "  - {kind: dead, rule: r-low, reason: wrong}\ncases:\n")
    code, out = _run("check", str(folder))
    assert code == 1 and "stale decision" in out
    replace_once(folder / "cases" / "cases.yaml", "kind: dead, rule: r-low,", "kind: deadish, rule: r-low,")
    code, out = _run("check", str(folder))
    assert code == 2


def test_validate_rejects_bad_declarations(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "catalogue.yaml", "  transfuse-rbc:\n",
                 "  transfuse-rbc:\n    conflicts_with: [transfuse-rbc, tki-hol]\n")
    problems = [str(p) for p in engine.validate(bundled_copy)]
    assert any("'transfuse-rbc' cannot conflict with itself" in p for p in problems)
    assert any("unknown recommendation code 'tki-hol'" in p and "tki-hold" in p for p in problems)
    replace_once(bundled_copy / "guideline.yaml", "guidance_expected:\n",
                 "guidance_expected:\n  - {description: x, when: {fact: temprature, ge: 38}}\n")
    problems = [str(p) for p in engine.validate(bundled_copy)]
    assert any("guideline.yaml" in p and "unknown fact 'temprature'" in p for p in problems)


def test_declared_conflict_on_a_bundled_copy_has_a_confirmed_witness(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "catalogue.yaml", "  gcsf-consider:\n",
                 "  gcsf-consider:\n    conflicts_with: [cvc-remove]\n")
    copy = engine.load(bundled_copy)
    report = check(copy)
    (finding,) = [f for f in report.findings if f.kind == "conflict" and f.codes == ("cvc-remove", "gcsf-consider")]
    assert finding.witness is not None and finding.accepted is None and report.open == [finding]
    assert {"cvc-remove", "gcsf-consider"} <= set(copy.evaluate(finding.witness).codes)
    assert any(loc.startswith(f"{bundled_copy}/catalogue.yaml:") or "catalogue.yaml:" in loc
               for loc in finding.locations)


def test_a_conflict_that_cannot_happen_is_no_finding(bundled_copy: Path) -> None:
    # The FN-only high-risk advice and the afebrile cause evaluation need febrile true and false.
    replace_once(bundled_copy / "catalogue.yaml", "  fn-high-risk-inpatient:\n",
                 "  fn-high-risk-inpatient:\n    conflicts_with: [afebrile-cause-evaluation]\n")
    assert not [f for f in check(engine.load(bundled_copy)).findings
                if "afebrile-cause-evaluation" in f.codes]


def test_a_witness_the_engine_does_not_confirm_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.products.check import confirm as _confirm
    from engine.products.check.findings import Finding

    fixture = engine.load(FIXTURE)
    false = Finding("conflict", "m", ("r-mid", "r-risk-low"), witness={"n": 1})
    with pytest.raises(_confirm.UnconfirmedWitnessError, match="does not confirm"):
        _confirm.confirm(false, fixture, probe_guideline(fixture))


def test_bundled_check_is_fast(guideline: engine.Guideline) -> None:
    start = time.perf_counter()
    report = check(guideline)
    assert time.perf_counter() - start < 10
    assert report.queries > 40


def test_patients_outside_a_declared_population_are_no_gap(tmp_path: Path) -> None:
    """Contract section 7: outside the population nothing is recommended by design, and the
    search reads that from the population rules the engine runs."""
    import shutil

    folder = tmp_path / "fixture"
    shutil.copytree(FIXTURE, folder)
    meta = folder / "guideline.yaml"
    meta.write_text(meta.read_text() + "population:\n  description: not b\n  when: {fact: b, is: false}\n")
    report = check(engine.load(folder))
    # The only gap (b true, nothing else) lies outside "b is false"; the conflict's witness has b true too.
    assert [f for f in report.findings if f.kind in ("gap", "conflict")] == []
    assert [f.kind for f in check(engine.load(FIXTURE)).findings if f.kind in ("gap", "conflict")]


def test_rendered_document_shows_expected_guidance_gaps_and_conflicts() -> None:
    from engine.products.render.document import render

    for fmt in ("markdown", "html"):
        doc = render(None, fmt)
        assert "Expected guidance and declared conflicts" in doc
        assert "Known gap: Gap kept: the source [1] gives management for fever with ANC below 0.5" in doc.replace(
            "\\[", "[").replace("\\]", "]")
        assert "cvc-remove" in doc and "fn-oral-step-down" in doc


def test_bundled_guideline_has_every_finding_decided(guideline: engine.Guideline) -> None:
    report = check(guideline)
    assert not report.open and not report.stale
    kinds = sorted((f.kind, f.codes or (f.expectation or f.fact,)) for f in report.findings)
    assert kinds == [
        ("conflict", ("cvc-remove", "fn-early-discharge")), ("conflict", ("cvc-remove", "fn-oral-step-down")),
        ("conflict", ("drug-hold-offending-agent", "tki-hold")),
        ("gap", ("febrile patients with any neutropenia (ANC below 1.5 ×10⁹/L)",)),
        ("gap", ("patients with severe neutropenia (ANC below 0.5 ×10⁹/L)",)),
        ("unread", ("neutropenia_grade",)), ("unread", ("profound_neutropenia",))]
    # Severe neutropenia with a known fever status always gets guidance (a proof: no witness).
    assert not [f for f in report.findings if f.expectation and "fever status is known" in f.expectation]
