"""`guideline test --mutate` (contract section 9): the mutants, killing them on the real engine, the report."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from engine import cli
from engine.errors import GuidelineInvalidError, Problem
from engine.model.content import Atom
from engine.products.mutate import runner
from engine.products.mutate.mutants import apply, generate, owners, substitute
from engine.products.mutate.runner import Bench, run_mutants
from engine.products.mutate.session import mutate
from tests.conftest import replace_once

FIXTURE = Path(__file__).parent / "fixtures" / "mutate"


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    target = tmp_path / "mutate"
    shutil.copytree(FIXTURE, target)
    return target


@pytest.fixture(scope="module")
def bench() -> Bench:
    return Bench(FIXTURE)


def main(*args: str) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    return cli.main(list(args), out, err), out.getvalue(), err.getvalue()


def by_words(bench: Bench) -> dict[tuple[str, str], int]:
    return {(m.rule, m.mutation): i for i, m in enumerate(bench.mutants)}


def test_fixture_mutants_are_exactly_the_contract_list(bench: Bench) -> None:
    # Counted by hand from tests/fixtures/mutate: thresholds `count < 500 /uL` and `tally ≥ 2` move
    # down and up (4) and flip strictness (2); `is: true` in r-both (2), r-either and the score's
    # applies_when (4 booleans); `level is high` and `level is low` swapped for the two other
    # values each, `in [mid, high]` each value swapped for `low` (6 swaps) or dropped (2); one
    # all and one any swapped (2), each of their two parts dropped (4); two options ±1 point (4).
    assert Counter(m.operator for m in bench.mutants) == {
        "threshold": 4, "strictness": 2, "boolean": 4, "enum-swap": 6, "enum-drop": 2,
        "all-any": 2, "drop-part": 4, "points": 4}
    assert len({(m.rule, m.mutation) for m in bench.mutants}) == len(bench.mutants) == 28


def test_a_threshold_written_in_per_microlitre_moves_in_per_microlitre(bench: Bench) -> None:
    moved = [m for m in bench.mutants if m.rule == "low-count" and m.operator == "threshold"]
    assert [m.mutation for m in moved] == ["count < 500 /uL → < 499 /uL", "count < 500 /uL → < 501 /uL"]
    # ... and is bound again as the resolve stage binds it: 499 /uL is exactly 0.499 ×10⁹/L.
    atoms = [m.node for m in moved]
    assert all(isinstance(a, Atom) for a in atoms)
    assert [(a.binding.exact, a.binding.written, a.unit) for a in atoms if isinstance(a, Atom) and a.binding] == [
        (Fraction(499, 1000), (499, "/uL"), "10*9/L"), (Fraction(501, 1000), (501, "/uL"), "10*9/L")]


def test_decimal_thresholds_move_by_their_written_precision(guideline) -> None:
    words = {m.mutation for m in generate(guideline.content) if m.rule == "transfuse-rbc"}
    assert {"hemoglobin < 7.0 g/dL → < 6.9 g/dL", "hemoglobin < 7.0 g/dL → < 7.1 g/dL",
            "hemoglobin < 7.0 g/dL → ≤ 7.0 g/dL"} <= words


def test_mutants_are_located_at_the_test_they_change(bench: Bench) -> None:
    m = bench.mutants[by_words(bench)[("r-tally", "tally ≥ 2 → > 2")]]
    assert m.location == ("tests/fixtures/mutate/rules/rules.yaml", 19, 29)
    text = (FIXTURE / "rules" / "rules.yaml").read_text(encoding="utf-8").splitlines()
    assert text[18][:28].endswith("ge: ") and text[18][28:].startswith("2")  # the threshold itself


def test_apply_changes_only_the_mutated_owner(bench: Bench) -> None:
    m = bench.mutants[by_words(bench)[("r-both", "all → any: low_count is true and flag is true")]]
    mutated = apply(bench.content, m)
    before, after = owners(bench.content), owners(mutated)
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b.when != a.when]
    assert changed == [m.owner]
    assert substitute(after[m.owner].when, (), before[m.owner].when) == before[m.owner].when


def test_hand_checked_kills_and_survivors(bench: Bench) -> None:
    # The one case: count exactly 500 /uL with flag true expects low_count false and no r-both.
    # `< 500 → ≤ 500` and `< 500 → < 501` make 500 low: killed. `< 499` keeps 500 not low: survives.
    index = by_words(bench)
    trials = {words: bench.trial(index[("low-count", words)]) for words in (
        "count < 500 /uL → ≤ 500 /uL", "count < 500 /uL → < 501 /uL", "count < 500 /uL → < 499 /uL")}
    assert {w: t.status for w, t in trials.items()} == {
        "count < 500 /uL → ≤ 500 /uL": "killed", "count < 500 /uL → < 501 /uL": "killed",
        "count < 500 /uL → < 499 /uL": "survived"}
    killed = trials["count < 500 /uL → ≤ 500 /uL"]
    assert killed.case == "cases: count exactly 500 /uL is not low"
    assert "low_count" in killed.detail


def test_parallel_workers_give_the_same_trials(bench: Bench) -> None:
    assert run_mutants(bench, 2) == run_mutants(bench, 1)


def test_stillborn_mutants_are_reported_apart_and_not_counted(fixture_copy: Path, monkeypatch) -> None:
    real = runner.semantic.check

    def check(content):  # the mutant with `tally ≥ 3` no longer validates
        found = list(real(content))
        if any(r.id == "r-tally" and isinstance(r.when, Atom) and r.when.value == 3 for r in content.rules):
            found.append(Problem("rules/rules.yaml", 19, 29, "bad-threshold", "made up for the test"))
        return found

    monkeypatch.setattr(runner.semantic, "check", check)
    report, problems, failing = mutate(fixture_copy, workers=1)
    assert report is not None and not problems and not failing
    assert [report.mutants[t.index].mutation for t in report.stillborn] == ["tally ≥ 2 → ≥ 3"]
    assert report.counted == 27 and len(report.killed) == 5
    assert "tally ≥ 2 → ≥ 3" not in {report.mutants[t.index].mutation for t in report.survivors}


def test_json_report_per_contract(fixture_copy: Path) -> None:
    code, out, _ = main("test", str(fixture_copy), "--mutate", "--format", "json", "--workers", "1")
    assert code == 0
    data = json.loads(out)
    assert {"score", "mutants", "killed", "survivors", "equivalent", "stillborn", "seconds"} <= set(data)
    assert (data["mutants"], data["killed"], data["score"]) == (28, 5, round(100 * 5 / 28, 1))
    assert len(data["survivors"]) == 23
    first = data["survivors"][0]
    assert set(first) >= {"file", "line", "col", "rule", "mutation", "hint"}
    assert first["file"].endswith("rules/rules.yaml")
    assert (first["line"], first["col"], first["rule"], first["mutation"]) == (
        4, 29, "low-count", "count < 500 /uL → < 499 /uL")
    assert first["hint"] == "no case has count in [499, 500) /uL where this test decides the outcome"


def test_text_report_lists_survivors_located_with_hints(fixture_copy: Path) -> None:
    code, out, err = main("test", str(fixture_copy), "--mutate", "--workers", "1")
    assert code == 0 and err == ""  # no progress line when stderr is not a terminal
    assert out.startswith("mutation score: 5/28 mutants killed (17.9%)\n")
    assert ("rules/rules.yaml:19:29: r-tally: tally ≥ 2 → > 2\n"
            "    hint: no case has tally exactly 2 where this test decides the outcome\n") in out


def test_min_score_gates_the_exit_code(fixture_copy: Path) -> None:
    args = ["test", str(fixture_copy), "--mutate", "--workers", "1", "--min-score"]
    assert main(*args, "17.9")[0] == 0
    code, _, err = main(*args, "18")
    assert code == 1 and "mutation score 17.9% is below --min-score 18%" in err


def test_invalid_guideline_or_case_file_exits_2(fixture_copy: Path) -> None:
    cases = fixture_copy / "cases" / "cases.yaml"
    replace_once(cases, "does_not_fire: [r-both]", "does_not_fire: [r-bothh]")
    code, out, _ = main("test", str(fixture_copy), "--mutate", "--workers", "1")
    assert code == 2 and "unknown recommendation code 'r-bothh'" in out
    replace_once(fixture_copy / "rules" / "rules.yaml", "fact: flag, is: true}]", "fact: flagg, is: true}]")
    code, _, err = main("test", str(fixture_copy), "--mutate", "--workers", "1")
    assert code == 2 and "unknown fact 'flagg'" in err


def test_a_case_failing_on_the_real_content_stops_the_run(fixture_copy: Path) -> None:
    replace_once(fixture_copy / "cases" / "cases.yaml", "low_count: false", "low_count: true")
    code, out, err = main("test", str(fixture_copy), "--mutate", "--workers", "1")
    assert code == 1 and out == "" and "cases fail on the unmutated guideline" in err


def test_mutate_flags_need_mutate() -> None:
    code, _, err = main("test", "--min-score", "90")
    assert code == 2 and "apply to --mutate" in err
    assert main("test", "--mutate", "--workers", "0")[0] == 2


def test_progress_line_only_on_a_terminal(fixture_copy: Path) -> None:
    from engine.products.mutate.session import command

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Terminal()
    assert command(fixture_copy, fmt="json", min_score=None, workers=1, out=out, err=err) == 0
    assert err.getvalue().endswith("mutants: 28/28\n")
    json.loads(out.getvalue())  # stdout is still exactly one JSON document


EQUIVALENT = """
equivalent_mutants:
  - rule: {rule}
    mutation: "{mutation}"
    reason: the editors' reason
"""


@pytest.mark.parametrize("rule, mutation, code, message", [
    ("r-tally", "tally ≥ 2 → > 2", 0, None),
    ("r-taly", "tally ≥ 2 → > 2", 2, "no rule or score 'r-taly' has mutants (did you mean 'r-tally'?)"),
    ("r-tally", "tally ≥ 2 → >= 2", 2, "rule 'r-tally' has no mutant 'tally ≥ 2 → >= 2' (did you mean "),
    ("low-count", "count < 500 /uL → ≤ 500 /uL", 2, "case 'cases: count exactly 500 /uL is not low' kills "
     "this mutant, so it is not equivalent"),
])
def test_equivalent_mutants_are_validated_and_excluded(fixture_copy: Path, rule: str, mutation: str,
                                                        code: int, message: str | None) -> None:
    cases = fixture_copy / "cases" / "cases.yaml"
    cases.write_text(cases.read_text(encoding="utf-8") + EQUIVALENT.format(rule=rule, mutation=mutation),
                     encoding="utf-8")
    got, out, _ = main("test", str(fixture_copy), "--mutate", "--format", "json", "--workers", "1")
    assert got == code
    if message is None:
        data = json.loads(out)
        assert (data["mutants"], data["killed"]) == (27, 5)
        assert [(e["rule"], e["mutation"], e["reason"]) for e in data["equivalent"]] == [
            (rule, mutation, "the editors' reason")]
        assert mutation not in {s["mutation"] for s in data["survivors"]}
    else:
        assert f"{cases}:" in out and message in out


def test_equivalent_mutants_are_schema_checked(fixture_copy: Path) -> None:
    cases = fixture_copy / "cases" / "cases.yaml"
    cases.write_text(cases.read_text(encoding="utf-8") + "equivalent_mutants:\n  - {rule: r-tally}\n",
                     encoding="utf-8")
    code, out, _ = main("test", str(fixture_copy))
    assert code == 2 and f"{cases}:" in out


# --- the bundled guideline (only the mutants of one rule: the full run is CI's job) -------------------

def test_a_removed_boundary_case_leaves_a_survivor_at_its_rule(bundled_copy: Path) -> None:
    name = "  - name: Temperature exactly 38.3 with fever known not sustained is still fever\n"
    path = bundled_copy / "cases" / "mutation-boundaries.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index(name)
    path.write_text(text[:start] + text[text.index("  - name:", start + 1):], encoding="utf-8")
    bench = Bench(bundled_copy)
    flip = "temperature < 38.3 °C → ≤ 38.3 °C"
    index = by_words(bench)[("febrile-false", flip)]
    assert bench.trial(index).status == "survived"
    file, line, col = bench.mutants[index].location
    assert file.endswith("rules/febrile-neutropenia.yaml") and (line, col) == (26, 43)
    # ... and with the case in place, the engine refuses the overlap the mutant makes: killed.
    assert Bench(Path(__file__).parent.parent / "guidelines" / "neutropenia").trial(index).status == "killed"


def test_invalid_guideline_is_refused_before_any_mutant(fixture_copy: Path) -> None:
    replace_once(fixture_copy / "rules" / "rules.yaml", "citations: [1]\n  - id: r-both", "citations: [9]\n  - id: r-both")
    with pytest.raises(GuidelineInvalidError):
        Bench(fixture_copy)
