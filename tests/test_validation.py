"""Broken guidelines: every validation code, located at FILE:LINE:COL, through the API and the CLI.

Each test breaks a fresh copy of the bundled guideline in one way, then checks that
`engine.validate(copy)` reports a problem with the expected code at the exact file, line and
column of the offending token (found by searching the edited text, never hard-coded), and that
`guideline validate COPY` exits 2 and prints `FILE:LINE:COL: code: message`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import position

import engine
from engine import cli
from engine.loader.yamlio import read_yaml

GUIDELINE_BIN = Path(sys.executable).with_name("guideline")


# --- helpers --------------------------------------------------------------------------------

def rule(rule_id: str, when: str = "{fact: febrile_neutropenia, is: true}",
         then: str = "{recommend: fn-local-resistance}", citations: str = "[1]",
         title: str = "Test rule") -> str:
    """One rule in flow style, as an editor would write it in rules/*.yaml."""
    return (f"  - id: {rule_id}\n    title: {title}\n    when: {when}\n    then: {then}\n"
            f"    citations: {citations}\n")


def add_rules(folder: Path, *rules: str, name: str = "zz-tests.yaml") -> Path:
    path = folder / "rules" / name
    path.write_text("# Rules added by a test.\nrules:\n" + "".join(rules), encoding="utf-8")
    return path


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def same_file(reported: str, expected: Path) -> bool:
    path = Path(reported)
    if not path.is_absolute():
        path = Path.cwd() / path
    return os.path.normpath(path.resolve()) == os.path.normpath(expected.resolve())


def listing(problems: list[engine.Problem]) -> str:
    return "\n".join(map(str, problems)) or "(no problems)"


Expected = tuple[str, Path, tuple[int, int], tuple[str, ...]]  # code, file, (line, col), fragments


def expect_problems(folder: Path, expected: list[Expected], codes: set[str] | None = None) -> list[engine.Problem]:
    """Assert each expected problem at its file:line:col, through the API and the CLI.

    `codes` is the complete set of codes the broken copy must produce (default: the expected
    ones), so an edit that breaks more than intended is caught too.
    """
    problems = engine.validate(folder)
    found = []
    for code, file, (line, col), fragments in expected:
        hits = [p for p in problems
                if p.code == code and same_file(p.file, file) and (p.line, p.col) == (line, col)]
        assert hits, f"expected {code} at {file.name}:{line}:{col}; got:\n{listing(problems)}"
        problem = hits[0]
        assert problem.file.replace(os.sep, "/").endswith(file.relative_to(folder).as_posix())
        for fragment in fragments:
            assert fragment in problem.message, f"{fragment!r} not in {problem.message!r}"
        assert str(problem) == f"{problem.file}:{line}:{col}: {code}: {problem.message}"
        found.append(problem)
    assert {p.code for p in problems} == (codes or {e[0] for e in expected}), listing(problems)

    rc, out, err = run_cli(["validate", str(folder)])
    assert rc == 2, out + err
    printed = (out + err).splitlines()
    for problem in found:
        assert str(problem) in printed, out + err
    return found


def expect_problem(folder: Path, code: str, file: Path, where: tuple[int, int], *fragments: str,
                   codes: set[str] | None = None) -> engine.Problem:
    return expect_problems(folder, [(code, file, where, fragments)], codes)[0]


# --- baseline -------------------------------------------------------------------------------

def test_bundled_guideline_validates_clean() -> None:
    assert engine.validate() == []
    assert engine.validate(engine.BUNDLED_GUIDELINE) == []
    for argv in (["validate"], ["validate", str(engine.BUNDLED_GUIDELINE)]):
        rc, out, err = run_cli(argv)
        assert rc == 0, out + err
        assert "valid" in out
        assert "sha256:" in out


def test_untouched_copy_validates_clean(bundled_copy: Path) -> None:
    """Every broken-copy test below relies on the copy starting clean."""
    assert engine.validate(bundled_copy) == []
    assert engine.load(bundled_copy).digest == engine.load().digest


def test_load_of_broken_copy_raises_guideline_invalid(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-typo", when="{fact: temprature, ge: 38.3, unit: Cel}"))
    with pytest.raises(engine.GuidelineInvalidError) as info:
        engine.load(bundled_copy)
    assert info.value.exit_code == 2
    assert [p.code for p in info.value.problems] == ["unknown-fact"]
    assert (info.value.problems[0].line, info.value.problems[0].col) == position(path, "temprature")
    assert "temprature" in str(info.value)

    # evaluate against the broken folder: bad input (2), nothing on stdout
    rc, out, err = run_cli(["evaluate", "-", "--guideline", str(bundled_copy), "--format", "json"],
                           stdin='{"anc": 0.3, "temperature": 38.6}')
    assert rc == 2
    assert out == ""
    assert "temprature" in err


# --- stage 1: YAML ------------------------------------------------------------------------------

def test_yaml_syntax(bundled_copy: Path) -> None:
    path = bundled_copy / "rules" / "zz-tests.yaml"
    path.write_text("rules:\n  - id: zz-syntax\n    title: Fever: high\n    when: {fact: febrile, is: true}\n"
                    "    then: {recommend: fn-local-resistance}\n    citations: [1]\n", encoding="utf-8")
    line, col = position(path, "Fever: high")
    expect_problem(bundled_copy, "yaml-syntax", path, (line, col + len("Fever")), "mapping values")


def test_yaml_syntax_unclosed_flow_mapping(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("catalogue.yaml", "\nrecommendations:\n",
                     "\nrecommendations:\n  zz-code: {kind: info, urgency: routine\n")
    problems = engine.validate(bundled_copy)
    assert [p.code for p in problems] == ["yaml-syntax"], listing(problems)
    assert same_file(problems[0].file, path)
    # the parser notices at the first token after the unclosed mapping, never before it
    assert problems[0].line >= position(path, "zz-code: {")[0]
    rc, out, err = run_cli(["validate", str(bundled_copy)])
    assert rc == 2 and str(problems[0]) in (out + err).splitlines()


@pytest.mark.parametrize("where", ["guideline.yaml top level", "rule item"])
def test_duplicate_key(bundled_copy: Path, edit_yaml, where: str) -> None:
    if where == "guideline.yaml top level":
        path = edit_yaml("guideline.yaml", "\nversion: ", "\nversion: 2.0.0\nversion: ")
        line, _ = position(path, "version: 2.0.0\n")
        expect_problem(bundled_copy, "duplicate-key", path, (line + 1, 1), "'version'")
    else:
        path = add_rules(bundled_copy, rule("zz-dup-key", title="First title\n    title: Second title"))
        expect_problem(bundled_copy, "duplicate-key", path, position(path, "title: Second"), "'title'")


def test_yaml_is_read_strictly(tmp_path: Path) -> None:
    """Only true/false are booleans; yes/no/on/off and dates stay text (docs/format.md)."""
    path = tmp_path / "strict.yaml"
    path.write_text("answer_no: no\nanswer_yes: yes\nswitch_on: on\nswitch_off: off\n"
                    "effective: 2026-12-01\nflag_true: true\nflag_false: false\ncount: 3\n"
                    "values: [none, no, yes]\n", encoding="utf-8")
    doc, problems = read_yaml(path, "strict.yaml")
    assert problems == []
    assert doc.data == {"answer_no": "no", "answer_yes": "yes", "switch_on": "on", "switch_off": "off",
                        "effective": "2026-12-01", "flag_true": True, "flag_false": False, "count": 3,
                        "values": ["none", "no", "yes"]}
    assert type(doc.data["effective"]) is str
    assert doc.data["flag_true"] is True and doc.data["flag_false"] is False
    assert doc.where(("effective",)) == position(path, "2026-12-01")
    assert doc.where(("values", 1)) == position(path, "no, yes")


def test_yaml_duplicate_key_and_syntax_through_read_yaml(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("a: 1\nb: 2\na: 3\n", encoding="utf-8")
    _, problems = read_yaml(path, "dup.yaml")
    assert [(p.code, p.line, p.col) for p in problems] == [("duplicate-key", 3, 1)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    _, problems = read_yaml(bad, "bad.yaml")
    assert [p.code for p in problems] == ["yaml-syntax"]


# --- stage 1: schema ------------------------------------------------------------------------------

def test_unknown_key_typo_in_rule(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-typo-key").replace("citations:", "citatons:"))
    # reported once, as the typo with its suggestion (not also as a missing `citations`)
    expect_problem(bundled_copy, "unknown-key", path, position(path, "citatons"),
                   "'citatons'", "did you mean 'citations'")


def test_unknown_key_typo_in_facts(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("facts.yaml", "\nderived:\n",
                     "\nderived:\n  zz_flag:\n    type: boolean\n    descripton: A test flag.\n")
    expect_problem(bundled_copy, "unknown-key", path, position(path, "descripton"),
                   "did you mean 'description'")


def test_missing_key(bundled_copy: Path) -> None:
    text = rule("zz-no-title").replace("    title: Test rule\n", "")
    path = add_rules(bundled_copy, text)
    expect_problem(bundled_copy, "missing-key", path, position(path, "id: zz-no-title"), "'title'")


@pytest.mark.parametrize("broken, token, fragment", [
    (rule("zz-type", citations="one"), "one", "array"),
    (rule("zz-type", when="{fact: anc, lt: low}"), "low", "number"),
    (rule("zz-type", citations="[1, first]"), "first", "integer"),
], ids=["citations-not-a-list", "threshold-not-a-number", "citation-not-an-integer"])
def test_schema_wrong_type(bundled_copy: Path, broken: str, token: str, fragment: str) -> None:
    path = add_rules(bundled_copy, broken)
    expect_problem(bundled_copy, "schema", path, position(path, token), fragment)


def test_schema_enum_value_in_catalogue(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("catalogue.yaml", "\nrecommendations:\n",
                     "\nrecommendations:\n  zz-code:\n    kind: do\n    urgency: asap\n    title: T\n"
                     "    text: Test text.\n")
    expect_problem(bundled_copy, "schema", path, position(path, "asap"), "asap")


# --- stage 2: semantic ----------------------------------------------------------------------------

def test_unknown_fact_in_condition(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-fever", when="{fact: temprature, ge: 38.3, unit: Cel}"))
    expect_problem(bundled_copy, "unknown-fact", path, position(path, "temprature"),
                   "'temprature'", "did you mean 'temperature'")


def test_unknown_fact_nested_in_all_any(bundled_copy: Path) -> None:
    when = "{all: [{fact: febrile_neutropenia, is: true}, {any: [{fact: bacteremia, is: true}, {fact: pneumonai, is: true}]}]}"
    path = add_rules(bundled_copy, rule("zz-nested", when=when))
    expect_problem(bundled_copy, "unknown-fact", path, position(path, "pneumonai"), "did you mean 'pneumonia'")


def test_unknown_derived_target(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-derive", then="{derive: febrile_neutropenai, value: true}"))
    expect_problem(bundled_copy, "unknown-fact", path, position(path, "febrile_neutropenai"),
                   "did you mean 'febrile_neutropenia'")


def test_unknown_code(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-code", then="{recommend: fn-empirical-iv-antibiotic}"))
    expect_problem(bundled_copy, "unknown-code", path, position(path, "fn-empirical-iv-antibiotic}"),
                   "'fn-empirical-iv-antibiotic'", "did you mean 'fn-empirical-iv-antibiotics'")


def test_duplicate_rule_id(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-twice"), rule("zz-twice", title="Same id again"))
    first, second = expect_problems(bundled_copy, [
        ("duplicate-id", path, position(path, "zz-twice", 0), ("'zz-twice'",)),
        ("duplicate-id", path, position(path, "zz-twice", 1), ("'zz-twice'",)),
    ])
    assert first != second


def test_unknown_reference(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-cites", citations="[1, 9]"))
    line, col = position(path, "[1, 9]")
    expect_problem(bundled_copy, "unknown-reference", path, (line, col + len("[1, ")), "9")


def test_unknown_reference_in_traceability(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("traceability.yaml", "\nstatements:\n",
                     "\nstatements:\n  - section: Test\n    statement: A test statement.\n"
                     "    references: [1, 9]\n    rules: [febrile-neutropenia]\n    codes: [fn-local-resistance]\n")
    line, col = position(path, "[1, 9]")
    expect_problem(bundled_copy, "unknown-reference", path, (line, col + len("[1, ")), "9")


@pytest.mark.parametrize("when, token, fragments", [
    ("{fact: copd, lt: 1}", "1}", ("'copd'", "boolean", "lt")),
    ("{fact: tumor_type, is: leukaemia}", "leukaemia", ("'leukaemia'", "tumor_type", "solid")),
    ("{fact: tumor_type, is: solidd}", "solidd", ("did you mean 'solid'",)),
    ("{fact: tumor_type, in: [solid, leukaemia]}", "[solid, leukaemia]", ("'leukaemia'",)),
    # YAML `no` stays text, so comparing a boolean with it is a type error, not `false`
    ("{fact: copd, is: no}", "no}", ("'copd'", "'no'")),
    ("{fact: anc, is: true}", "true}", ("anc",)),
], ids=["lt-on-boolean", "enum-value-outside-values", "enum-value-typo", "in-value-outside-values",
        "yaml-no-on-boolean", "is-on-number"])
def test_type_mismatch_in_condition(bundled_copy: Path, when: str, token: str, fragments: tuple[str, ...]) -> None:
    path = add_rules(bundled_copy, rule("zz-types", when=when))
    expect_problem(bundled_copy, "type-mismatch", path, position(path, token), *fragments)


def test_is_number_on_boolean_is_rejected_at_the_number(bundled_copy: Path) -> None:
    """`is: 3` on a boolean: the schema already refuses a number for `is` (code `schema`)."""
    path = add_rules(bundled_copy, rule("zz-types", when="{fact: copd, is: 3}"))
    problems = engine.validate(bundled_copy)
    assert len(problems) == 1, listing(problems)
    problem = problems[0]
    assert problem.code == "schema"
    assert same_file(problem.file, path) and (problem.line, problem.col) == position(path, "3}")
    assert problem.message == "rules/0/when/is: 3 is not of type 'boolean', 'string'"
    rc, out, err = run_cli(["validate", str(bundled_copy)])
    assert rc == 2 and str(problem) in (out + err).splitlines()


def test_type_mismatch_in_derived_value(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-value", when="{fact: anc, lt: 0.5}",
                                        then="{derive: neutropenia_grade, value: critical}"))
    expect_problem(bundled_copy, "type-mismatch", path, position(path, "critical"), "'critical'",
                   "neutropenia_grade")


@pytest.mark.parametrize("when, fragments", [
    ("{fact: anc, lt: 0.5, unit: mg}", ("'mg'", "'anc'")),
    ("{fact: temperature, ge: 38.3, unit: mg}", ("'mg'", "'temperature'", "[degF]")),
    ("{fact: copd, is: true, unit: mg}", ("'copd'",)),
], ids=["mg-on-anc", "mg-on-temperature", "unit-on-boolean"])
def test_unit_mismatch(bundled_copy: Path, when: str, fragments: tuple[str, ...]) -> None:
    path = add_rules(bundled_copy, rule("zz-unit", when=when))
    expect_problem(bundled_copy, "unit-mismatch", path, position(path, "mg}"), *fragments)


def test_threshold_in_an_accepted_unit_is_valid(bundled_copy: Path) -> None:
    """Positive control for unit-mismatch: [degF] is a unit of temperature."""
    add_rules(bundled_copy, rule("zz-unit-ok", when='{fact: temperature, ge: 100.4, unit: "[degF]"}'))
    assert engine.validate(bundled_copy) == []


def test_cycle_between_derived_facts(bundled_copy: Path, edit_yaml) -> None:
    facts = edit_yaml("facts.yaml", "\nderived:\n",
                      "\nderived:\n  zz_alpha:\n    type: boolean\n    description: Reads zz_beta.\n"
                      "  zz_beta:\n    type: boolean\n    description: Reads zz_alpha.\n")
    add_rules(bundled_copy,
              rule("zz-alpha", when="{fact: zz_beta, is: true}", then="{derive: zz_alpha, value: true}"),
              rule("zz-beta", when="{fact: zz_alpha, is: true}", then="{derive: zz_beta, value: true}"))
    # the offending token is the name of the fact that starts the cycle
    expect_problem(bundled_copy, "cycle", facts, position(facts, "zz_alpha:"),
                   "zz_alpha -> zz_beta -> zz_alpha")


def test_underived_fact(bundled_copy: Path, edit_yaml) -> None:
    facts = edit_yaml("facts.yaml", "\nderived:\n",
                      "\nderived:\n  zz_orphan:\n    type: boolean\n    description: Nothing derives me.\n")
    expect_problem(bundled_copy, "underived-fact", facts, position(facts, "zz_orphan:"), "'zz_orphan'")


def test_code_without_rule(bundled_copy: Path, edit_yaml) -> None:
    catalogue = edit_yaml("catalogue.yaml", "\nrecommendations:\n",
                          "\nrecommendations:\n  zz-orphan-code:\n    kind: info\n    urgency: routine\n"
                          "    title: Orphan\n    text: No rule recommends this.\n")
    # traced, so that the only problem is the missing rule
    edit_yaml("traceability.yaml", "\nstatements:\n",
              "\nstatements:\n  - section: Test\n    statement: A test statement.\n    references: [1]\n"
              "    rules: []\n    codes: [zz-orphan-code]\n")
    expect_problem(bundled_copy, "code-without-rule", catalogue, position(catalogue, "zz-orphan-code:"),
                   "'zz-orphan-code'")


def test_traceability_unknown_rule_and_code(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("traceability.yaml", "\nstatements:\n",
                     "\nstatements:\n  - section: Test\n    statement: A test statement.\n    references: [1]\n"
                     "    rules: [febrile-neutropenia, fn-local-resistence]\n"
                     "    codes: [fn-locl-resistance]\n")
    expect_problems(bundled_copy, [
        ("unknown-rule", path, position(path, "fn-local-resistence"),
         ("'fn-local-resistence'", "did you mean 'fn-local-resistance'")),
        ("unknown-code", path, position(path, "fn-locl-resistance"),
         ("'fn-locl-resistance'", "did you mean 'fn-local-resistance'")),
    ])


def test_untraced_code(bundled_copy: Path, edit_yaml) -> None:
    edit_yaml("catalogue.yaml", "\nrecommendations:\n",
              "\nrecommendations:\n  zz-new-code:\n    kind: info\n    urgency: routine\n"
              "    title: New\n    text: Recommended but traced to no seed statement.\n")
    add_rules(bundled_copy, rule("zz-new", then="{recommend: zz-new-code}"))
    trace = bundled_copy / "traceability.yaml"
    expect_problem(bundled_copy, "untraced-code", trace, position(trace, "statements:"), "'zz-new-code'")


def test_yaml_key_that_is_not_text(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-float-key", title="T\n    1.5: one and a half"))
    expect_problem(bundled_copy, "yaml-key", path, position(path, "1.5:"), "text")


def test_unreadable_file(bundled_copy: Path) -> None:
    path = bundled_copy / "rules" / "zz-tests.yaml"
    path.write_bytes(b"rules:\n  - id: zz-latin1\n    title: Caf\xe9\n")
    expect_problem(bundled_copy, "unreadable", path, (1, 1))


def test_bad_range(bundled_copy: Path, edit_yaml) -> None:
    facts = edit_yaml("facts.yaml", "\ninputs:\n",
                      "\ninputs:\n  zz_level:\n    type: number\n    unit: \"%\"\n    range: [100, 0]\n"
                      "    description: A level with its bounds swapped.\n")
    expect_problem(bundled_copy, "bad-range", facts, position(facts, "[100, 0]"), "zz_level")


def test_duplicate_reference_id(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("guideline.yaml", "\nreferences:\n",
                     "\nreferences:\n  - id: 1\n    citation: The same id as the first real reference.\n")
    first, second = (position(path, "- id: 1\n", i) for i in (0, 1))
    expect_problems(bundled_copy, [
        ("duplicate-id", path, (first[0], first[1] + len("- id: ")), ("reference 1",)),
        ("duplicate-id", path, (second[0], second[1] + len("- id: ")), ("reference 1",)),
    ])


def test_duplicate_score_item_id(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("scores.yaml", "      - id: no-copd\n",
                     "      - id: no-copd\n        title: The same item twice\n        points:\n"
                     "          - {points: 4, when: {fact: copd, is: false}}\n"
                     "          - {points: 0, when: {fact: copd, is: true}}\n      - id: no-copd\n")
    first, second = (position(path, "- id: no-copd", i) for i in (0, 1))
    expect_problems(bundled_copy, [
        ("duplicate-id", path, (first[0], first[1] + len("- id: ")), ("'no-copd'",)),
        ("duplicate-id", path, (second[0], second[1] + len("- id: ")), ("'no-copd'",)),
    ])


def test_conflicting_derivation_of_a_score_fact(bundled_copy: Path) -> None:
    add_rules(bundled_copy, rule("zz-mascc", then="{derive: mascc_score, value: 26}"))
    facts = bundled_copy / "facts.yaml"
    line, _ = position(facts, "\n  mascc_score:\n")
    expect_problem(bundled_copy, "conflicting-derivation", facts, (line + 1, 3), "mascc_score", "zz-mascc")


def test_condition_too_large_is_located_at_its_rule(bundled_copy: Path) -> None:
    """2^9 branches: refused before durable_rules hangs, and the message must lead to the rule."""
    facts = ["copd", "burns", "pneumonia", "bacteremia", "candidemia", "diarrhea", "hypovolemia", "on_tki", "tki_held"]
    anys = ", ".join(f"{{any: [{{fact: {f}, is: true}}, {{fact: pain, is: true}}]}}" for f in facts)
    path = add_rules(bundled_copy, rule("zz-big", when=f"{{all: [{anys}]}}"))
    problems = engine.validate(bundled_copy)
    assert [p.code for p in problems] == ["too-large"], listing(problems)
    problem = problems[0]
    assert same_file(problem.file, path), f"too-large should point at the rule, not {problem}"
    assert (problem.line, problem.col) == position(path, "{all: [{any:"), str(problem)
    assert "zz-big" in problem.message
    rc, out, err = run_cli(["validate", str(bundled_copy)])
    assert rc == 2 and str(problem) in (out + err).splitlines()


# --- folder-level problems --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["guideline.yaml", "facts.yaml", "catalogue.yaml"])
def test_missing_file(bundled_copy: Path, name: str) -> None:
    (bundled_copy / name).unlink()
    expect_problem(bundled_copy, "missing-file", bundled_copy / name, (1, 1), name)


def test_missing_rules_folder(bundled_copy: Path) -> None:
    shutil.rmtree(bundled_copy / "rules")
    problems = engine.validate(bundled_copy)
    assert [p.code for p in problems] == ["missing-file"], listing(problems)
    assert "rules" in problems[0].file and "rules" in problems[0].message
    assert (problems[0].line, problems[0].col) == (1, 1)
    rc, out, err = run_cli(["validate", str(bundled_copy)])
    assert rc == 2 and str(problems[0]) in (out + err).splitlines()


def test_empty_folder_reports_every_required_file(tmp_path: Path) -> None:
    problems = engine.validate(tmp_path)
    assert {p.code for p in problems} == {"missing-file"}
    messages = " ".join(p.message for p in problems)
    for name in ("guideline.yaml", "facts.yaml", "catalogue.yaml", "rules/*.yaml"):
        assert name in messages


@pytest.mark.parametrize("kind", ["no such directory", "a file, not a folder"])
def test_no_guideline(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nowhere"
    if kind != "no such directory":
        target.write_text("{}", encoding="utf-8")
    problems = engine.validate(target)
    assert [(p.code, p.line, p.col) for p in problems] == [("no-guideline", 1, 1)]
    assert same_file(problems[0].file, target)
    rc, out, err = run_cli(["validate", str(target)])
    assert rc == 2
    assert str(problems[0]) in (out + err).splitlines()
    with pytest.raises(engine.GuidelineInvalidError):
        engine.load(target)


# --- several problems at once -----------------------------------------------------------------------

def _assert_sorted_and_printed(folder: Path, problems: list[engine.Problem]) -> None:
    keys = [(p.file, p.line, p.col) for p in problems]
    assert keys == sorted(keys)
    rc, out, err = run_cli(["validate", str(folder)])
    assert rc == 2
    printed = [line for line in (out + err).splitlines() if line in {str(p) for p in problems}]
    assert printed == [str(p) for p in problems]


def test_several_file_level_problems_in_several_files_are_all_reported(bundled_copy: Path, edit_yaml) -> None:
    guideline_yaml = edit_yaml("guideline.yaml", "\nversion: ", "\nversion: 2.0.0\nversion: ")
    catalogue = edit_yaml("catalogue.yaml", "\nrecommendations:\n",
                          "\nrecommendations:\n  zz-code:\n    kind: info\n    urgncy: routine\n"
                          "    title: T\n")  # and no text
    rules = bundled_copy / "rules" / "zz-tests.yaml"
    rules.write_text("rules:\n  - id: zz-syntax\n    title: Fever: high\n", encoding="utf-8")
    problems = engine.validate(bundled_copy)
    got = {(Path(p.file).name, p.code, p.line, p.col) for p in problems}
    line, _ = position(guideline_yaml, "version: 2.0.0\n")
    assert ("guideline.yaml", "duplicate-key", line + 1, 1) in got, listing(problems)
    assert ("catalogue.yaml", "unknown-key", *position(catalogue, "urgncy")) in got, listing(problems)
    assert ("catalogue.yaml", "missing-key", *position(catalogue, "kind: info")) in got, listing(problems)
    line, col = position(rules, "Fever: high")
    assert ("zz-tests.yaml", "yaml-syntax", line, col + len("Fever")) in got, listing(problems)
    assert len(problems) == 4, listing(problems)
    _assert_sorted_and_printed(bundled_copy, problems)


def test_several_semantic_problems_in_several_files_are_all_reported(bundled_copy: Path, edit_yaml) -> None:
    rules = add_rules(bundled_copy,
                      rule("zz-a", when="{fact: temprature, ge: 38.3}", then="{recommend: fn-local-resistence}",
                           citations="[9]"))
    facts = edit_yaml("facts.yaml", "\nderived:\n",
                      "\nderived:\n  zz_orphan:\n    type: boolean\n    description: Nothing derives me.\n")
    trace = edit_yaml("traceability.yaml", "\nstatements:\n",
                      "\nstatements:\n  - section: Test\n    statement: A test statement.\n    references: [1]\n"
                      "    rules: [zz-missing-rule]\n    codes: [fn-local-resistance]\n")
    problems = engine.validate(bundled_copy)
    got = {(Path(p.file).name, p.code) for p in problems}
    assert got == {("zz-tests.yaml", "unknown-fact"), ("zz-tests.yaml", "unknown-code"),
                   ("zz-tests.yaml", "unknown-reference"), ("facts.yaml", "underived-fact"),
                   ("traceability.yaml", "unknown-rule")}, listing(problems)
    by_code = {p.code: p for p in problems}
    assert (by_code["unknown-fact"].line, by_code["unknown-fact"].col) == position(rules, "temprature")
    assert (by_code["unknown-code"].line, by_code["unknown-code"].col) == position(rules, "fn-local-resistence")
    assert (by_code["unknown-reference"].line, by_code["unknown-reference"].col) == position(rules, "9]")
    assert (by_code["unknown-rule"].line, by_code["unknown-rule"].col) == position(trace, "zz-missing-rule")
    assert by_code["underived-fact"].line >= position(facts, "zz_orphan:")[0]
    _assert_sorted_and_printed(bundled_copy, problems)


# --- the real command ----------------------------------------------------------------------------------

def test_validate_subprocess_prints_relative_located_problems(bundled_copy: Path) -> None:
    path = add_rules(bundled_copy, rule("zz-fever", when="{fact: temprature, ge: 38.3}"))
    line, col = position(path, "temprature")
    for argv in ([str(GUIDELINE_BIN)], [sys.executable, "-m", "engine"]):
        proc = subprocess.run([*argv, "validate", "neutropenia"], cwd=bundled_copy.parent,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = (proc.stdout + proc.stderr).splitlines()
        prefix = f"neutropenia/rules/zz-tests.yaml:{line}:{col}: unknown-fact: "
        assert any(x.startswith(prefix) and "did you mean 'temperature'" in x for x in lines), lines


def test_a_derived_fact_that_is_also_an_input_accepts_the_inputs_units(edit_yaml) -> None:
    """`anc` is derived (given or computed); a threshold written in /uL is still an ANC threshold."""
    copy = edit_yaml("rules/derived.yaml", "{fact: anc, lt: 0.1, unit: 10*9/L}", "{fact: anc, lt: 100, unit: /uL}")
    assert engine.validate(copy.parent.parent) == []
    guideline = engine.load(copy.parent.parent)
    assert guideline.evaluate({"anc": 0.09}).derived["profound_neutropenia"] is True
    assert guideline.evaluate({"anc": 0.1}).derived["profound_neutropenia"] is False


def test_one_loinc_code_mapped_to_two_facts(bundled_copy: Path, edit_yaml) -> None:
    path = edit_yaml("facts.yaml", 'loinc: ["718-7"]', 'loinc: ["718-7", "6690-2"]')
    problems = engine.validate(bundled_copy)
    assert [p.code for p in problems] == ["duplicate-loinc"]
    assert "6690-2" in problems[0].message and problems[0].line == position(path, '"6690-2"]')[0]
