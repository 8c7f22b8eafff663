"""`guideline diff`: semantic diff, behavioural diff on cases and boundary patients, version policy, formats.

Every test edits copies of the bundled guideline by exact text replacement (the anchor must occur
once, so a test whose anchor disappeared fails loudly instead of testing nothing).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import replace_once

import engine
from engine import cli
from engine.model.content import All
from engine.pipeline import analyse
from engine.products.diff import compare as _diff
from engine.products.diff import report as _diffreport
from engine.products.diff import versions as _versions
from engine.products.words import condition_words, value_words

FN_ANC = "            - {fact: anc, lt: 0.5, unit: 10*9/L}\n            - {fact: anc_expected_below_0_5_within_48h"
VERSION = "version: 1.0.0\n"
LOCAL_RESISTANCE_RULE = """  - id: fn-local-resistance
    title: Local resistance patterns
    when: {fact: febrile_neutropenia, is: true}
    then: {recommend: fn-local-resistance}
    citations: [1]
    rationale: The final antibiotic choice follows local bacterial resistance.

"""
LOCAL_RESISTANCE_CODE = """  fn-local-resistance:
    kind: info
    urgency: routine
"""
LOCAL_RESISTANCE_TRACE = """  - section: Management Based on Severity / Antibiotic Selection
    statement: Local bacterial resistance patterns guide the final antibiotic choice.
    references: [1]
    rules: [fn-local-resistance]
    codes: [fn-local-resistance]

"""
EXTRA_TRANSFUSION_RULE = """
  - id: transfuse-rbc-below-8
    title: Red cell transfusion below haemoglobin 8.0 g/dL
    when: {fact: hemoglobin, lt: 8.0, unit: g/dL}
    then: {recommend: transfuse-rbc}
    citations: [2]
"""


def _copy(tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copytree(engine.BUNDLED_GUIDELINE, target)
    return target


def _bump(folder: Path, version: str) -> None:
    replace_once(folder / "guideline.yaml", VERSION, f"version: {version}\n")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["diff", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _changes(diff: _diff.Diff, area: str, key: str) -> list[_diff.Change]:
    return [c for c in diff.semantic if c.area == area and c.key == key]


def _patient(diff: _diff.Diff, name: str) -> _diff.PatientChange | None:
    return next((p for p in diff.behaviour.changed if p.name == name), None)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return _copy(tmp_path, "old"), _copy(tmp_path, "new")


@pytest.fixture
def few_bases(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs about the version policy or sources need few boundary patients (speed only)."""
    monkeypatch.setattr(_diff, "BASES_PER_FACT", 3)


# --- threshold change: the field-level change and its behavioural impact --------------------------

@pytest.fixture(scope="module")
def threshold_diff(tmp_path_factory: pytest.TempPathFactory) -> _diff.Diff:
    tmp = tmp_path_factory.mktemp("threshold")
    old, new = _copy(tmp, "old"), _copy(tmp, "new")
    replace_once(new / "rules" / "febrile-neutropenia.yaml", FN_ANC, FN_ANC.replace("lt: 0.5", "lt: 1.0"))
    _bump(new, "1.1.0")
    return _diff.compare(old, new)


def test_threshold_change_reads_as_a_field_level_change(threshold_diff: _diff.Diff) -> None:
    (change,) = _changes(threshold_diff, "rule", "febrile-neutropenia")
    assert change.field == "when" and change.level == "minor"
    assert "anc" in change.summary and "threshold < 0.5 → < 1.0 ×10⁹/L" in change.summary
    assert (change.old, change.new) == ("anc < 0.5 ×10⁹/L", "anc < 1.0 ×10⁹/L")


def test_threshold_change_shows_on_boundary_patients_and_cases(threshold_diff: _diff.Diff) -> None:
    b = threshold_diff.behaviour
    assert b.from_boundaries > 0 and b.skipped == 0 and b.changed
    moved = [p for p in b.changed if p.name.startswith("boundary anc=0.99 from case")]
    assert moved, "a febrile patient with ANC 0.99 is febrile neutropenia only in the new version"
    p = moved[0]
    assert "fn-empirical-iv-antibiotics" in p.codes_added and not p.codes_removed
    assert any(d.fact == "febrile_neutropenia" and d.new is True for d in p.derived)
    # At and above the new threshold nothing changes; below the old one nothing changes either.
    assert not [p for p in b.changed if p.name.startswith(("boundary anc=1.00", "boundary anc=1.01",
                                                           "boundary anc=0.49"))]
    case = _patient(threshold_diff, "case 'ANC exactly 0.5 with fever and no expected fall is not febrile neutropenia'")
    assert case is not None and any(d.fact == "febrile_neutropenia" and (d.old, d.new) == (False, True)
                                    for d in case.derived)
    assert threshold_diff.version_check.ok and threshold_diff.version_check.required == "minor"


def test_behavioural_diff_of_the_bundled_guideline_stays_fast(threshold_diff: _diff.Diff) -> None:
    assert threshold_diff.behaviour.patients_compared > 500
    assert threshold_diff.behaviour.seconds < 10


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_every_format_reports_the_threshold_change(threshold_diff: _diff.Diff, fmt: str) -> None:
    report = _diffreport.RENDER[fmt](threshold_diff)
    if fmt == "json":
        doc = json.loads(report)
        assert {"old", "new", "semantic", "behaviour", "version_check"} <= set(doc)
        assert doc["old"]["version"] == "1.0.0" and doc["new"]["version"] == "1.1.0"
        assert doc["old"]["digest"].startswith("sha256:") and doc["old"]["id"] == "neutropenia"
        assert {"patients_compared", "skipped", "changed"} <= set(doc["behaviour"])
        assert set(doc["version_check"]) >= {"required", "actual", "ok", "messages"}
        assert doc["version_check"]["ok"] is True
        assert any("threshold < 0.5 → < 1.0" in c["summary"] for c in doc["semantic"])
    elif fmt == "markdown":
        assert report.startswith("## Guideline diff")
        assert "| patient | codes added | codes removed | derived facts (old → new) |" in report
        assert "|---|---|---|---|" in report
        assert "`fn-empirical-iv-antibiotics`" in report
    else:
        assert "VERSION CHECK: OK" in report
        assert "threshold < 0.5 → < 1.0 ×10⁹/L" in report and "boundary anc=0.99" in report


# --- layout only: no change at all -------------------------------------------------------------------

def _reversed_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _reversed_keys(data[k]) for k in reversed(list(data))}
    if isinstance(data, list):
        return [_reversed_keys(item) for item in data]
    return data


def test_reordering_reformatting_and_comments_change_nothing(pair: tuple[Path, Path]) -> None:
    old, new = pair
    # One rule moves to a file of its own (exact text), then every file is re-written: keys in
    # reverse order, rules in reverse order, block style, an extra comment.
    febrile_false_start = "  - id: febrile-false\n"
    path = new / "rules" / "febrile-neutropenia.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index(febrile_false_start)
    end = text.index("  - id: febrile-neutropenia\n")
    replace_once(path, text[start:end], "")
    (new / "rules" / "moved.yaml").write_text("rules:\n" + text[start:end], encoding="utf-8")
    for file in [new / "facts.yaml", new / "catalogue.yaml", new / "scores.yaml", new / "guideline.yaml",
                 *sorted((new / "rules").glob("*.yaml"))]:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        if "rules" in data:
            data["rules"] = list(reversed(data["rules"]))
        body = yaml.safe_dump(_reversed_keys(data), sort_keys=False, default_flow_style=False, allow_unicode=True,
                              width=60)
        file.write_text("# re-formatted: keys and rules in reverse order\n\n" + body.replace("\n", "\n# \n", 1),
                        encoding="utf-8")
    assert analyse(new).problems == []
    diff = _diff.compare(old, new, bases_per_fact=5)
    assert diff.semantic == ()
    assert diff.behaviour.changed == () and diff.behaviour.skipped == 0
    assert diff.old.digest == diff.new.digest
    assert diff.version_check.ok and diff.version_check.required == "none"


# --- added / removed rules, catalogue, facts ---------------------------------------------------

def test_added_and_removed_rule(pair: tuple[Path, Path]) -> None:
    old, new = pair
    anchor = "    rationale: Haemoglobin is kept at 7.0 g/dL or more with packed red cells.\n"
    replace_once(new / "rules" / "supportive-care.yaml", anchor, anchor + EXTRA_TRANSFUSION_RULE)
    _bump(new, "1.1.0")
    added = _diff.compare(old, new, bases_per_fact=3)
    (change,) = _changes(added, "rule", "transfuse-rbc-below-8")
    assert change.what == "added" and change.level == "minor"
    assert "recommends transfuse-rbc when hemoglobin < 8.0 g/dL" in change.summary
    p = _patient(added, "boundary hemoglobin=7.9 alone")
    assert p is not None and p.codes_added == ("transfuse-rbc",)
    assert added.version_check.ok

    removed = _diff.compare(new, old, bases_per_fact=3)  # the other way round, and the version goes down
    (change,) = _changes(removed, "rule", "transfuse-rbc-below-8")
    assert change.what == "removed" and change.level == "minor"  # transfuse-rbc is still recommended
    p = _patient(removed, "boundary hemoglobin=7.9 alone")
    assert p is not None and p.codes_removed == ("transfuse-rbc",)
    assert not removed.version_check.ok
    assert any("goes down" in m for m in removed.version_check.messages)


def test_catalogue_urgency_change(pair: tuple[Path, Path]) -> None:
    old, new = pair
    replace_once(new / "catalogue.yaml", LOCAL_RESISTANCE_CODE,
                 LOCAL_RESISTANCE_CODE.replace("urgency: routine", "urgency: urgent"))
    diff = _diff.compare(old, new, bases_per_fact=2)
    (change,) = _changes(diff, "catalogue", "fn-local-resistance")
    assert (change.field, change.summary, change.level) == ("urgency", "urgency routine → urgent", "minor")
    assert not diff.version_check.ok and diff.version_check.required == "minor"


def test_fact_range_and_accepted_unit_changes(pair: tuple[Path, Path]) -> None:
    old, new = pair
    replace_once(new / "facts.yaml", '      10*6/L: {multiply: "1/1000"}\n    range: [0, 100]\n    loinc: ["751-8"',
                 '    range: [0, 50]\n    loinc: ["751-8"')
    _bump(new, "2.0.0")
    diff = _diff.compare(old, new, bases_per_fact=2)
    summaries = {c.summary: c.level for c in _changes(diff, "input fact", "anc")}
    assert summaries == {"accepted unit 10*6/L removed": "major", "plausible range 0–100 ×10⁹/L → 0–50 ×10⁹/L": "minor"}
    assert diff.behaviour.skipped >= 1  # the case giving ANC in 10*6/L is invalid input for the new version
    assert diff.version_check.required == "major" and diff.version_check.ok


def test_canonical_unit_change_needs_major(pair: tuple[Path, Path]) -> None:
    old, new = pair
    replace_once(new / "facts.yaml", "    unit: h\n    range: [0, 10000]\n",
                 '    unit: min\n    units:\n      h: {multiply: "60"}\n    range: [0, 600000]\n')
    _bump(new, "1.1.0")
    diff = _diff.compare(old, new, bases_per_fact=2)
    summaries = {c.summary: c.level for c in _changes(diff, "input fact", "clinically_stable_hours")}
    assert summaries["canonical unit h → min"] == "major"
    assert summaries["accepted unit h added (× 60)"] == "minor"
    assert diff.behaviour.changed  # a bare 48 now means 48 minutes
    assert not diff.version_check.ok
    assert any("MINOR bump; these changes need MAJOR" in m for m in diff.version_check.messages)


# --- version policy through the command line ------------------------------------------------------

def test_logic_change_without_bump_fails(pair: tuple[Path, Path], few_bases: None) -> None:
    old, new = pair
    replace_once(new / "rules" / "febrile-neutropenia.yaml", FN_ANC, FN_ANC.replace("lt: 0.5", "lt: 1.0"))
    code, out, err = _cli(str(old), str(new), "--format", "json")
    assert code == 1, err
    check = json.loads(out)["version_check"]
    assert (check["required"], check["actual"], check["ok"]) == ("minor", "none", False)
    assert any("logic changed without a version bump" in m for m in check["messages"])


def test_wording_only_change_with_patch_bump_passes(pair: tuple[Path, Path], few_bases: None) -> None:
    old, new = pair
    replace_once(new / "catalogue.yaml", "title: Let local resistance patterns guide the final choice",
                 "title: Let local resistance patterns guide the antibiotic choice")
    replace_once(new / "rules" / "antibiotics.yaml", "    citations: [1]\n    rationale: The final antibiotic choice",
                 "    citations: [1, 3]\n    rationale: The final antibiotic choice")
    _bump(new, "1.0.1")
    code, out, err = _cli(str(old), str(new), "--format", "json")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["version_check"]["required"] == "patch" and doc["version_check"]["actual"] == "patch"
    texts = {c["text"]: c["level"] for c in doc["semantic"]}
    assert texts["catalogue fn-local-resistance: title “Let local resistance patterns guide the final choice” → "
                 "“Let local resistance patterns guide the antibiotic choice”"] == "patch"
    assert texts["rule fn-local-resistance: citations added: [3]"] == "patch"
    assert doc["behaviour"]["changed"] == []


def test_removed_code_with_minor_bump_needs_major(pair: tuple[Path, Path], few_bases: None) -> None:
    old, new = pair
    replace_once(new / "rules" / "antibiotics.yaml", LOCAL_RESISTANCE_RULE, "")
    catalogue = new / "catalogue.yaml"
    text = catalogue.read_text(encoding="utf-8")
    start = text.index(LOCAL_RESISTANCE_CODE)
    end = text.index("  # --- Febrile neutropenia: additional cover")
    replace_once(catalogue, text[start:end], "")
    replace_once(new / "traceability.yaml", LOCAL_RESISTANCE_TRACE, "")
    _bump(new, "1.1.0")
    code, out, err = _cli(str(old), str(new))
    assert code == 1, err
    assert "VERSION CHECK: FAILED — required bump MAJOR, actual MINOR" in out
    assert "catalogue fn-local-resistance: removed" in out
    assert "rule fn-local-resistance: removed" in out
    assert "- fn-local-resistance" in out  # the behavioural diff lists it as removed for patients


def test_version_only_bump_is_fine_but_reported(pair: tuple[Path, Path]) -> None:
    old, new = pair
    _bump(new, "1.0.1")
    diff = _diff.compare(old, new, bases_per_fact=1)
    check = diff.version_check
    assert check.ok and (check.required, check.actual) == ("none", "patch")
    assert "only the version changed: the content is otherwise identical" in check.messages


@pytest.mark.parametrize("old, new, level, expected", [
    ("1.0.0", "1.0.0", "none", None),
    ("1.0.0", "1.0.1", "patch", None),
    ("1.0.3", "1.1.0", "minor", None),
    ("1.0.3", "1.1.3", "minor", "1.1.0"),
    ("1.4.2", "2.0.0", "major", None),
    ("1.4.2", "2.1.0", "major", "2.0.0"),
    ("1.2.0", "1.1.9", "downgrade", None),
    ("1.1.0-rc.1", "1.1.0", "pre-release", None),
    ("1.1.0", "1.1.0-rc.1", "downgrade", None),
])
def test_bump_levels(old: str, new: str, level: str, expected: str | None) -> None:
    assert _versions._bump(old, new) == (level, expected)


def test_equal_digest_with_another_version_is_ok_and_reported() -> None:
    side = _diff.Side("g", "1.0.0", "sha256:x", "old")
    empty = _diff.Behaviour(0, 0, 0, 0, (), 0.0, (), ())
    check = _diff.version_check(side, _diff.Side("g", "1.0.1", "sha256:x", "new"), (), empty)
    assert check.ok and check.actual == "patch"
    assert any("same content digest" in m and "1.0.0 → 1.0.1" in m for m in check.messages)


# --- bad input -----------------------------------------------------------------------------------

def test_missing_folder_is_bad_input(tmp_path: Path) -> None:
    code, _, err = _cli(str(tmp_path / "nowhere"), str(engine.BUNDLED_GUIDELINE))
    assert code == 2 and "no such directory" in err


def test_invalid_side_prints_its_located_problems(pair: tuple[Path, Path]) -> None:
    old, new = pair
    replace_once(new / "rules" / "febrile-neutropenia.yaml", "{fact: febrile, is: true}\n        - any:",
                 "{fact: febril, is: true}\n        - any:")
    code, _, err = _cli(str(old), str(new))
    assert code == 2
    assert "febrile-neutropenia.yaml:" in err and "unknown-fact" in err and "did you mean 'febrile'" in err


def test_invalid_side_reports_its_problems_then_the_error(pair: tuple[Path, Path]) -> None:
    old, new = pair
    replace_once(new / "rules" / "febrile-neutropenia.yaml", "{fact: febrile, is: true}\n        - any:",
                 "{fact: febril, is: true}\n        - any:")
    with pytest.raises(_diff.SideInvalidError) as caught:
        _diff.compare(old, new, new_label="new")
    exc = caught.value
    assert isinstance(exc, engine.errors.BadInputError) and exc.exit_code == 2
    lines = exc.report()
    assert lines[-1] == "error: new: the guideline is invalid"
    assert lines[:-1] == [str(p) for p in exc.problems] and lines[0].startswith("new/rules/febrile-neutropenia.yaml:")
    code, _, err = _cli(str(old), str(new))
    assert code == 2 and err.splitlines()[-1] == f"error: {new}: the guideline is invalid"


def test_usage_errors_are_bad_input() -> None:
    assert _cli(str(engine.BUNDLED_GUIDELINE))[0] == 2
    assert _cli("--rev", "HEAD", str(engine.BUNDLED_GUIDELINE))[0] == 2


# --- --rev in a temporary git repository -------------------------------------------------------------

def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.org",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_rev_compares_two_commits_and_the_working_tree(tmp_path: Path, few_bases: None) -> None:
    repo = tmp_path / "repo"
    folder = repo / "guidelines" / "neutropenia"
    shutil.copytree(engine.BUNDLED_GUIDELINE, folder)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v1.0.0")
    replace_once(folder / "rules" / "febrile-neutropenia.yaml", FN_ANC, FN_ANC.replace("lt: 0.5", "lt: 1.0"))
    _bump(folder, "1.1.0")
    _git(repo, "commit", "-q", "-am", "v1.1.0")

    code, out, err = _cli("--rev", "HEAD~1..HEAD", str(folder), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["old"]["version"], doc["new"]["version"]) == ("1.0.0", "1.1.0")
    assert doc["old"]["source"] == "HEAD~1:guidelines/neutropenia"
    assert any("threshold < 0.5 → < 1.0" in c["summary"] for c in doc["semantic"])
    assert doc["behaviour"]["changed"]

    # The working tree: a logic change on top of 1.1.0 without a bump.
    replace_once(folder / "rules" / "supportive-care.yaml", "lt: 7.0, unit: g/dL", "lt: 8.0, unit: g/dL")
    code, out, _ = _cli("--rev", "HEAD..", str(folder))
    assert code == 1 and "logic changed without a version bump" in out
    assert _cli("--rev", "HEAD..WORKTREE", str(folder))[0] == 1

    assert _cli("--rev", "no-such-rev..HEAD", str(folder))[0] == 2
    assert _cli("--rev", "HEAD", str(folder))[0] == 2
    assert not list(Path(tmp_path).glob("guideline-diff-*"))


# --- words -----------------------------------------------------------------------------------------

def test_conditions_and_values_in_words(guideline: engine.Guideline) -> None:
    content = guideline.content
    rules = {r.id: r for r in content.rules}
    assert condition_words(rules["febrile-neutropenia"].when) == \
        "febrile is true and (anc < 0.5 ×10⁹/L or anc_expected_below_0_5_within_48h is true)"
    assert condition_words(rules["neutropenia-grade-moderate"].when) == "0.5 ≤ anc < 1.0 ×10⁹/L"
    assert condition_words(All((rules["neutropenia-grade-moderate"].when, rules["febrile-true"].when))) \
        .startswith("0.5 ≤ anc < 1.0 ×10⁹/L and (temperature ≥ 38.3 °C or ")
    assert condition_words(rules["anc-from-differential"].when) == "anc is not known"
    assert value_words(rules["anc-from-differential"].value) == \
        "wbc × (neutrophils_pct + bands_pct [0 if not given]) ÷ 100"
