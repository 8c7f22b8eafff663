"""Stage 2 (engine/check): each semantic check function, run directly on a tiny in-memory guideline.

Every case breaks the clean tiny guideline below in one way and lists, per check of
`semantic.CHECKS`, exactly the problems it must report (code, file, place, message); every
other check must report nothing. So each problem code is shown to come from the check that
owns it, at its location. tests/test_validation.py covers the same codes end to end (CLI,
bundled guideline); this file tests the check functions one by one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import position, replace_once

from engine.check import semantic
from engine.errors import Problem
from engine.loader.folder import build, read_folder
from engine.model.content import Content

# A guideline small enough to read at a glance; it validates clean (test_the_tiny_guideline_is_clean).
TINY = {
    "guideline.yaml": """\
id: tiny
title: Tiny guideline
version: 0.1.0
status: draft
owners: [{name: Stage tests}]
references:
  - {id: 1, citation: "A source."}
""",
    "facts.yaml": """\
inputs:
  count: {type: number, unit: 10*9/L, range: [0, 100], loinc: ["111-1"], description: c,
          units: {/uL: {multiply: "1/1000"}}}
  flag: {type: boolean, description: f}
  kind: {type: enum, values: [low, high], description: k}
derived:
  count: {type: number, unit: 10*9/L, description: the count given}
  low_count: {type: boolean, description: l}
  total: {type: number, unit: "1", description: t}
  total_range: {type: range, description: r}
""",
    "catalogue.yaml": """\
recommendations:
  r-low: {kind: do, urgency: urgent, title: L, text: t}
  r-total: {kind: info, urgency: routine, title: T, text: t}
""",
    "rules/rules.yaml": """\
rules:
  - id: count-given
    title: count as given
    when: {fact: count, known: true}
    then: {derive: count, value: {fact: count}}
    citations: [1]
  - id: low
    title: low count
    when: {fact: count, lt: 500, unit: /uL}
    then: {derive: low_count, value: true}
    citations: [1]
  - id: r-low
    title: r
    when: {all: [{fact: low_count, is: true}, {fact: kind, is: low}]}
    then: {recommend: r-low}
    citations: [1]
  - id: r-total
    title: r
    when: {fact: total, ge: 2}
    then: {recommend: r-total}
    citations: [1]
""",
    "scores.yaml": """\
scores:
  - id: tiny-score
    title: T
    fact: total
    range_fact: total_range
    applies_when: {fact: flag, is: true}
    citations: [1]
    items:
      - id: item-a
        title: A
        points:
          - {points: 1, when: {fact: kind, is: low}}
          - {points: 0, when: {fact: kind, is: high}}
""",
    "traceability.yaml": """\
statements:
  - section: S
    statement: A statement.
    references: [1]
    rules: [low, r-low]
    codes: [r-low, r-total]
""",
}

Edit = tuple[str, str, str]  # file, old text (exactly once), new text
# (check name, code, file, place, message); place is a text in the file, `|` marking the
# reported column (default: the text's start), `#n` choosing its n-th occurrence.
Finding = tuple[str, str, str, str, str]


def write_tiny(folder: Path, *edits: Edit) -> Path:
    """The tiny guideline written to `folder`, with each edit applied."""
    for name, text in TINY.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    for name, old, new in edits:
        replace_once(folder / name, old, new)
    return folder


def content_of(folder: Path) -> Content:
    docs, problems = read_folder(folder)
    assert problems == [], "\n".join(map(str, problems))
    return build(docs)


def findings(content: Content) -> dict[str, list[Problem]]:
    """What each check reports, for the checks that report something."""
    found = {entry.name: list(entry.run(content)) for entry in semantic.CHECKS}
    return {name: problems for name, problems in found.items() if problems}


def locate(folder: Path, file: str, place: str) -> tuple[int, int]:
    place, _, nth = place.partition("#")
    line, col = position(folder / file, place.replace("|", ""), int(nth or 0))
    return line, col + max(place.find("|"), 0)


# --- edits --------------------------------------------------------------------------------------

def rule(then: str, when: str = "{fact: flag, is: true}", citations: str = "[1]", rule_id: str = "extra") -> Edit:
    """One more rule, first in rules.yaml."""
    return ("rules/rules.yaml", "rules:\n", (f"rules:\n  - {{id: {rule_id}, title: x, when: {when}, then: {then}, "
            f"citations: {citations}}}\n"))


def fact(section: str, declaration: str) -> Edit:
    """One more fact, first in `inputs` or `derived`."""
    return ("facts.yaml", f"{section}:\n", f"{section}:\n  {declaration}\n")


def in_r_low(when: str) -> Edit:
    return ("rules/rules.yaml", "{fact: kind, is: low}", when)


META, FACTS, RULES, SCORES, TRACE = ("guideline.yaml", "facts.yaml", "rules/rules.yaml", "scores.yaml",
                                     "traceability.yaml")
POINTS = "[{points: 1, when: {fact: flag, is: true}}, {points: 0, when: {fact: flag, is: false}}]"
SCORE_FACT = "a score's fact has one source"

CASES: list[tuple[str, list[Edit], list[Finding]]] = [
    ("reference-defined-twice",
     [(META, '"A source."}\n', '"A source."}\n  - {id: 1, citation: "Again."}\n')],
     [("duplicate-reference-ids", "duplicate-id", META, '{id: |1, citation: "A ', "reference 1 is defined twice"),
      ("duplicate-reference-ids", "duplicate-id", META, '{id: |1, citation: "Ag', "reference 1 is defined twice")]),
    ("rule-id-used-twice", [(RULES, "- id: r-total", "- id: r-low")],
     [("duplicate-rule-ids", "duplicate-id", RULES, "- id: |r-low#0", "rule id 'r-low' is used by 2 rules"),
      ("duplicate-rule-ids", "duplicate-id", RULES, "- id: |r-low#1", "rule id 'r-low' is used by 2 rules")]),
    ("atom-unknown-fact", [in_r_low("{fact: knd, is: low}")],
     [("condition-atoms", "unknown-fact", RULES, "knd", "unknown fact 'knd' (did you mean 'kind'?)")]),
    ("atom-comparison-on-enum", [in_r_low("{fact: kind, lt: 1}")],
     [("condition-atoms", "type-mismatch", RULES, "1}", "'kind' is enum; 'lt' compares numbers (use is / in)")]),
    ("atom-enum-value-typo", [in_r_low("{fact: kind, is: lwo}")],
     [("condition-atoms", "type-mismatch", RULES, "lwo",
       "'lwo' is not a value of 'kind' (did you mean 'low'?); values: low, high")]),
    ("atom-in-value-outside-values", [in_r_low("{fact: kind, in: [low, mid]}")],
     [("condition-atoms", "type-mismatch", RULES, "[low, mid]", "'mid' is not a value of 'kind'; values: low, high")]),
    ("atom-boolean-compared-with-text", [(RULES, "{fact: low_count, is: true}", "{fact: low_count, is: no}")],
     [("condition-atoms", "type-mismatch", RULES, "no}",
       "'low_count' is boolean; compare it with true or false, not 'no'")]),
    ("atom-is-on-number", [(RULES, "{fact: total, ge: 2}", "{fact: total, is: high}")],
     [("condition-atoms", "type-mismatch", RULES, "high}", "'total' is a number; test it with lt / le / gt / ge")]),
    ("atom-unit-on-enum", [in_r_low("{fact: kind, is: low, unit: mg}")],
     [("condition-atoms", "unit-mismatch", RULES, "mg}", "'kind' is enum: a unit makes no sense here")]),
    # `count` reads the derived fact, whose threshold units are the input's (Content.units_of).
    ("atom-unit-not-accepted", [(RULES, "unit: /uL", "unit: mg")],
     [("condition-atoms", "unit-mismatch", RULES, "mg}",
       "unit 'mg' is not a unit of 'count' (canonical 10*9/L; accepted: 10*9/L, /uL)")]),
    # Inside the rule deriving low_count, `low_count` reads the input of that name: there is none.
    ("atom-in-own-derivation-reads-the-input",
     [(RULES, "{fact: count, lt: 500, unit: /uL}", "{fact: low_count, is: true}")],
     [("condition-atoms", "unknown-fact", RULES, "{fact: |low_count, is: true}#0",
       "a rule deriving 'low_count' cannot read 'low_count' itself (there is no input fact 'low_count')")]),
    ("atom-in-a-score-option", [(SCORES, "{fact: kind, is: low}", "{fact: kind, is: lo}")],
     [("condition-atoms", "type-mismatch", SCORES, "lo}",
       "'lo' is not a value of 'kind' (did you mean 'low'?); values: low, high")]),
    # The population's condition is checked as a rule's is, located in guideline.yaml.
    ("population-unknown-fact",
     [(META, "references:\n", "population: {description: d, when: {fact: cout, ge: 1}}\nreferences:\n")],
     [("condition-atoms", "unknown-fact", META, "cout", "unknown fact 'cout' (did you mean 'count'?)")]),
    ("population-cites-unknown-reference",
     [(META, "references:\n", "population: {description: d, when: {fact: flag, is: true}, citations: [1, 2]}\n"
       "references:\n")],
     [("population-citations", "unknown-reference", META, "2]",
       "the population cites reference 2, which guideline.yaml does not define")]),
    ("meaning-of-no-value-citing-unknown-reference",
     [(FACTS, "low_count: {type: boolean, description: l}",
       "low_count: {type: boolean, description: l, meaning: {x: {text: t, citations: [2]}}}")],
     [("value-meanings", "unknown-value", FACTS, "x: {text",
       "meaning given for 'x', which is not a value of 'low_count' (values: none: not an enum)"),
      ("value-meanings", "unknown-reference", FACTS, "2]}}}", "reference 2 is not defined")]),
    ("rule-cites-unknown-reference", [rule("{recommend: r-total}", citations="[1, 3]")],
     [("rule-citations", "unknown-reference", RULES, "3]",
       "rule 'extra' cites reference 3, which guideline.yaml does not define")]),
    ("rule-recommends-unknown-code", [rule("{recommend: r-totl}")],
     [("rule-codes", "unknown-code", RULES, "r-totl",
       "unknown recommendation code 'r-totl' (did you mean 'r-total'?)")]),
    ("derive-unknown-fact", [rule("{derive: low_cnt, value: true}")],
     [("derive-targets", "unknown-fact", RULES, "low_cnt",
       "'low_cnt' is not a derived fact of facts.yaml (did you mean 'low_count'?)")]),
    ("derive-an-input", [rule("{derive: flag, value: true}")],
     [("derive-targets", "unknown-fact", RULES, "{derive: |flag",
       "'flag' is not a derived fact of facts.yaml (it is an input fact; declare it under derived: too)")]),
    ("derive-a-range", [rule("{derive: total_range, value: 1}")],
     [("derive-targets", "type-mismatch", RULES, "{derive: total_range",
       "'total_range' is a range; only a score produces it"),
      ("derived-values", "type-mismatch", RULES, "1}", "'total_range' is a range; test it with lt / le / gt / ge"),
      ("conflicting-derivations", "conflicting-derivation", FACTS, "total_range:",
       f"'total_range' is produced by rule 'extra' and score 'tiny-score'; {SCORE_FACT}")]),
    ("derived-boolean-given-a-number", [rule("{derive: low_count, value: 3}")],
     [("derived-values", "type-mismatch", RULES, "3}",
       "'low_count' is boolean; compare it with true or false, not 3")]),
    ("derived-number-given-text", [rule("{derive: count, value: high}")],
     [("derived-values", "type-mismatch", RULES, "high}", "'count' is a number, not 'high'")]),
    ("derived-boolean-given-a-formula", [rule("{derive: low_count, value: {add: [{fact: count}, 1]}}")],
     [("derived-values", "type-mismatch", RULES, "{add:", "'low_count' is boolean; a formula gives a number")]),
    ("derived-boolean-copies-a-boolean", [rule("{derive: low_count, value: {fact: flag}}")], []),
    ("formula-reads-unknown-fact", [rule("{derive: count, value: {add: [{fact: cnt}, 1]}}")],
     [("formula-operands", "unknown-fact", RULES, "cnt}", "unknown fact 'cnt' (did you mean 'count'?)")]),
    ("formula-reads-a-boolean", [rule("{derive: count, value: {add: [{fact: flag}, 1]}}")],
     [("formula-operands", "type-mismatch", RULES, "{fact: flag}", "'flag' is boolean; formulas need numbers")]),
    ("input-range-upside-down", [(FACTS, "range: [0, 100]", "range: [100, 0]")],
     [("input-ranges", "bad-range", FACTS, "[100, 0]", "range of 'count' has min > max")]),
    ("unit-multiplies-by-zero", [(FACTS, '{multiply: "1/1000"}', '{multiply: "0"}')],
     [("unit-conversions", "unit-mismatch", FACTS, "{multiply", "unit '/uL' of 'count' multiplies by 0")]),
    ("loinc-code-of-two-facts",
     [(FACTS, "  flag:", ('  other: {type: number, unit: "1", range: [0, 1], loinc: ["222-2", "111-1"], '
       "description: o}\n  flag:"))],
     [("duplicate-loinc", "duplicate-loinc", FACTS, '"222-2", |"111-1"',
       "LOINC 111-1 is mapped to both 'count' and 'other'")]),
    ("input-and-derived-disagree-on-type", [(FACTS, "  flag:", "  total: {type: boolean, description: t}\n  flag:")],
     [("input-and-derived-types", "type-mismatch", FACTS, "total: {type: |number",
       "'total' is boolean as an input but number as a derived fact")]),
    ("score-id-used-twice",
     [fact("derived", 'total2: {type: number, unit: "1", description: t}'),
      (SCORES, "scores:\n", ("scores:\n  - {id: tiny-score, title: Again, fact: total2, applies_when: {fact: flag, "
       f"is: true}}, citations: [1], items: [{{id: item-b, title: B, points: {POINTS}}}]}}\n"))],
     [("duplicate-score-ids", "duplicate-id", SCORES, place, "score id 'tiny-score' is used twice")
      for place in ("{id: |tiny-score", "- id: |tiny-score")]),
    ("item-id-used-twice",
     [(SCORES, "    items:\n", f"    items:\n      - {{id: item-a, title: Again, points: {POINTS}}}\n")],
     [("duplicate-item-ids", "duplicate-id", SCORES, place, "item id 'item-a' is used twice in score 'tiny-score'")
      for place in ("{id: |item-a", "- id: |item-a")]),
    ("score-cites-unknown-reference", [(SCORES, "citations: [1]", "citations: [1, 4]")],
     [("score-citations", "unknown-reference", SCORES, "4]",
       "score 'tiny-score' cites reference 4, which guideline.yaml does not define")]),
    ("score-writes-unknown-fact", [(SCORES, "fact: total\n", "fact: totl\n")],
     [("score-targets", "unknown-fact", SCORES, "totl",
       "'totl' is not a derived fact of facts.yaml (did you mean 'total'?)"),
      ("underived-facts", "underived-fact", FACTS, "total: {type", "no rule or score derives 'total'")]),
    ("score-range-fact-not-a-range", [(SCORES, "range_fact: total_range", "range_fact: low_count")],
     [("score-targets", "type-mismatch", SCORES, "low_count", "'low_count' must be declared type range"),
      ("underived-facts", "underived-fact", FACTS, "total_range:", "no rule or score derives 'total_range'"),
      ("conflicting-derivations", "conflicting-derivation", FACTS, "low_count:",
       f"'low_count' is produced by rule 'low' and score 'tiny-score'; {SCORE_FACT}")]),
    ("derived-fact-nothing-derives", [fact("derived", "orphan: {type: boolean, description: o}")],
     [("underived-facts", "underived-fact", FACTS, "orphan", "no rule or score derives 'orphan'")]),
    ("score-fact-also-derived-by-a-rule", [rule("{derive: total, value: 3}")],
     [("conflicting-derivations", "conflicting-derivation", FACTS, "total: {type",
       f"'total' is produced by rule 'extra' and score 'tiny-score'; {SCORE_FACT}")]),
    ("derived-facts-in-a-cycle",
     [fact("derived", "a_fact: {type: boolean, description: a}"),
      fact("derived", "b_fact: {type: boolean, description: b}"),
      rule("{derive: a_fact, value: true}", when="{fact: b_fact, is: true}", rule_id="a"),
      rule("{derive: b_fact, value: true}", when="{fact: a_fact, is: true}", rule_id="b")],
     [("derivation-cycles", "cycle", FACTS, "a_fact",
       "derived facts depend on each other in a cycle: a_fact -> b_fact -> a_fact")]),
    ("catalogue-code-no-rule-recommends",
     [("catalogue.yaml", "  r-total:", "  r-spare: {kind: info, urgency: routine, title: S, text: t}\n  r-total:"),
      (TRACE, "[r-low, r-total]", "[r-low, r-total, r-spare]")],
     [("codes-without-rule", "code-without-rule", "catalogue.yaml", "r-spare",
       "catalogue code 'r-spare' has no rule recommending it")]),
    ("statement-traced-to-unknown-rule", [(TRACE, "[low, r-low]", "[low, r-lw]")],
     [("traced-rules", "unknown-rule", TRACE, "r-lw", "no rule 'r-lw' (did you mean 'r-low'?)")]),
    ("statement-traced-to-unknown-code", [(TRACE, "[r-low, r-total]", "[r-low, r-total, r-lw]")],
     [("traced-codes", "unknown-code", TRACE, "r-lw", "unknown recommendation code 'r-lw' (did you mean 'r-low'?)")]),
    ("statement-cites-unknown-reference", [(TRACE, "references: [1]", "references: [1, 5]")],
     [("traced-references", "unknown-reference", TRACE, "5]", "reference 5 is not defined")]),
    ("conflict-with-itself-or-unknown-code",
     [("catalogue.yaml", "title: L, text: t}", "title: L, text: t, conflicts_with: [r-low, r-totl]}")],
     [("conflict-codes", "bad-conflict", "catalogue.yaml", "[|r-low, r-totl]", "'r-low' cannot conflict with itself"),
      ("conflict-codes", "unknown-code", "catalogue.yaml", "r-totl]",
       "unknown recommendation code 'r-totl' (did you mean 'r-total'?)")]),
    ("catalogue-code-traced-to-no-statement", [(TRACE, "[r-low, r-total]", "[r-low]")],
     [("untraced-codes", "untraced-code", TRACE, "statements",
       "catalogue code 'r-total' is traced to no seed statement")]),
]


def test_the_tiny_guideline_is_clean(tmp_path: Path) -> None:
    assert findings(content_of(write_tiny(tmp_path))) == {}


@pytest.mark.parametrize("edits, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_problem_comes_from_the_check_that_owns_it(tmp_path: Path, edits: list[Edit],
                                                        expected: list[Finding]) -> None:
    folder = write_tiny(tmp_path, *edits)
    got = [(name, p.code, Path(p.file).resolve(), (p.line, p.col), p.message)
           for name, problems in findings(content_of(folder)).items() for p in problems]
    want = [(name, code, (folder / file).resolve(), locate(folder, file, place), message)
            for name, code, file, place, message in expected]
    assert sorted(got) == sorted(want)


def test_every_check_has_a_case_and_reports_only_its_own_codes() -> None:
    codes = {entry.name: set(entry.codes) for entry in semantic.CHECKS}
    assert len(codes) == len(semantic.CHECKS), "two checks share a name"
    exercised = {finding[0] for _, _, expected in CASES for finding in expected}
    assert exercised == set(codes), f"checks without a case: {sorted(set(codes) - exercised)}"
    for case, _, expected in CASES:
        for name, code, *_ in expected:
            assert code in codes[name], f"{case}: {name} reports {code}, which semantic.CHECKS does not give it"


def test_check_runs_every_check_and_stops_at_none(tmp_path: Path) -> None:
    """Problems of several checks in several files all come back, in the order of the table."""
    content = content_of(write_tiny(tmp_path, ("traceability.yaml", "[low, r-low]", "[low, r-lw]"),
                                    ("facts.yaml", "range: [0, 100]", "range: [100, 0]"),
                                    in_r_low("{fact: knd, is: low}"), rule("{recommend: r-totl}")))
    problems = semantic.check(content)
    assert [p.code for p in problems] == ["unknown-fact", "unknown-code", "bad-range", "unknown-rule"]
    assert problems == [p for entry in semantic.CHECKS for p in entry.run(content)]


def test_without_traceability_yaml_nothing_is_traced(tmp_path: Path) -> None:
    folder = write_tiny(tmp_path)
    (folder / "traceability.yaml").unlink()
    assert findings(content_of(folder)) == {}


def test_a_rule_reading_the_fact_it_derives_is_told_so_not_offered_the_same_name(tmp_path) -> None:
    """Found by the property suite: 'unknown fact 'd' (did you mean 'd'?)'."""
    import shutil

    from conftest import replace_once

    import engine

    folder = tmp_path / "kleene"
    shutil.copytree(Path(__file__).parent / "fixtures" / "kleene", folder)
    replace_once(folder / "rules" / "rules.yaml", "when: {any: [{fact: a, is: true}, {all: [{fact: b, is: true}, "
                 "{fact: x, lt: 5}]}]}", "when: {fact: d, is: false}")
    messages = [p.message for p in engine.validate(folder)]
    assert messages == ["a rule deriving 'd' cannot read 'd' itself (there is no input fact 'd')"]
