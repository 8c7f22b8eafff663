"""Every product reads the resolved model: a threshold written in another unit is the same threshold.

A copy of the bundled guideline writes the severe-neutropenia test as `{fact: anc, lt: 500, unit: /uL}`
instead of `{fact: anc, lt: 0.5, unit: 10*9/L}`. The engine reads 0.5 ×10⁹/L; so must the rendered
document (rule text and threshold tables), the diagram, the semantic and behavioural diff and an
evaluated patient's `because`. Only the public entry points are used, so these tests also run on
versions from before the resolve stage (where several of them fail).
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from conftest import replace_once

import engine
from engine.products.diff.compare import Diff, compare
from engine.products.render.diagram import diagram_svg
from engine.products.render.document import render

SEVERE = "    when: {fact: anc, lt: 0.5, unit: 10*9/L}\n    then: {derive: neutropenia_grade, value: severe}"
WRITTEN = " (written 500 /uL)"
HTML_WRITTEN = f'<span class="small muted">{WRITTEN}</span>'
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _copy(tmp: Path, name: str, threshold: str | None = None) -> Path:
    folder = tmp / name
    shutil.copytree(engine.BUNDLED_GUIDELINE, folder)
    if threshold is not None:
        replace_once(folder / "rules" / "derived.yaml", SEVERE, SEVERE.replace("lt: 0.5, unit: 10*9/L", threshold))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the bundled guideline, the same with the severe threshold written in /uL)."""
    tmp = tmp_path_factory.mktemp("resolved")
    return _copy(tmp, "canonical"), _copy(tmp, "per-ul", "lt: 500, unit: /uL")


@pytest.fixture(scope="module")
def documents(folders: tuple[Path, Path]) -> dict[tuple[str, str], str]:
    return {(side, fmt): render(folder, fmt) for side, folder in zip(("canonical", "per-ul"), folders)
            for fmt in ("html", "markdown")}


@pytest.fixture(scope="module")
def rewritten_diff(folders: tuple[Path, Path]) -> Diff:
    return compare(*folders, bases_per_fact=2)


def _anc_tests(document: str, fmt: str) -> list[str]:
    """The tests of the `anc` threshold table, top to bottom."""
    if fmt == "html":
        table = document.split('id="thresholds-anc"', 1)[1].split("</table>", 1)[0]
        return [html.unescape(t) for t in re.findall(r'class="num"><strong>(.*?)</strong>', table)]
    table = document.split("### `anc`", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| \*\*(.*?)\*\* \|", table, flags=re.MULTILINE)


def _severe_rule_text(document: str, fmt: str) -> str:
    if fmt == "html":
        article = document.split('id="rule-neutropenia-grade-severe"', 1)[1].split("</article>", 1)[0]
        return html.unescape(re.search(r'<p class="when"><b>When</b> (.*?)</p>', article).group(1))  # type: ignore[union-attr]
    block = document.split('<a id="rule-neutropenia-grade-severe"></a>', 1)[1]
    return block.split("\nWhen ", 1)[1].split("  \n", 1)[0]


# --- the rendered document ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_rule_text_shows_the_canonical_threshold(documents: dict[tuple[str, str], str], fmt: str) -> None:
    assert _severe_rule_text(documents["per-ul", fmt], fmt) == "anc < 0.5 ×10⁹/L" + WRITTEN
    assert _severe_rule_text(documents["canonical", fmt], fmt) == "anc < 0.5 ×10⁹/L"


@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_threshold_table_is_in_canonical_units_and_order(documents: dict[tuple[str, str], str], fmt: str) -> None:
    tests = _anc_tests(documents["per-ul", fmt], fmt)
    # The severe rule's test groups with the other rules testing anc < 0.5 (the note is on its row).
    assert tests.index("anc < 0.1 ×10⁹/L") < tests.index("anc < 0.5 ×10⁹/L") \
        < tests.index("0.5 ≤ anc < 1.0 ×10⁹/L") < tests.index("anc ≥ 1.5 ×10⁹/L")
    assert tests == _anc_tests(documents["canonical", fmt], fmt)
    table = documents["per-ul", fmt].split("thresholds-anc" if fmt == "html" else "### `anc`", 1)[1]
    assert "neutropenia-grade-severe</code></a>" + HTML_WRITTEN in table if fmt == "html" \
        else "(#rule-neutropenia-grade-severe)" + WRITTEN in table


@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_document_differs_only_by_the_written_note_and_the_digest(documents: dict[tuple[str, str], str],
                                                                 fmt: str) -> None:
    per_ul = DIGEST.sub("DIGEST", documents["per-ul", fmt])
    assert "anc < 500" not in html.unescape(per_ul) and per_ul.count(WRITTEN) >= 2  # rule text, threshold table
    assert per_ul.replace(HTML_WRITTEN, "").replace(WRITTEN, "") == DIGEST.sub("DIGEST", documents["canonical", fmt])


def test_diagram_is_the_same(folders: tuple[Path, Path]) -> None:
    canonical, per_ul = (engine.load(folder).content for folder in folders)
    assert diagram_svg(per_ul) == diagram_svg(canonical)


# --- the diff ---------------------------------------------------------------------------------------

def test_diff_reports_a_rewording_not_a_threshold_change(rewritten_diff: Diff) -> None:
    levels = {c.text: c.level for c in rewritten_diff.semantic}
    assert all(level in ("none", "patch") for level in levels.values()), levels
    (change,) = [c for c in rewritten_diff.semantic if c.area == "rule" and c.key == "neutropenia-grade-severe"]
    assert change.level == "patch" and "same test in canonical units" in change.summary
    assert "0.5 ×10⁹/L" in change.summary and "500 /uL" in change.summary
    assert rewritten_diff.version_check.required == "patch"


def test_behavioural_diff_finds_no_changed_patient(rewritten_diff: Diff) -> None:
    assert rewritten_diff.behaviour.changed == () and rewritten_diff.behaviour.skipped == 0
    probed = dict(rewritten_diff.behaviour.thresholds)["anc"]
    assert "0.50" in probed and not [v for v in probed if float(v) >= 100]  # no boundary patient at ANC 500


def test_a_moved_threshold_written_in_another_unit_reads_in_canonical_units(folders: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    moved = _copy(tmp_path, "moved", "lt: 400, unit: /uL")
    diff = compare(folders[0], moved, bases_per_fact=1)
    (change,) = [c for c in diff.semantic if c.area == "rule" and c.key == "neutropenia-grade-severe"]
    assert change.level == "minor" and "threshold < 0.5 → < 0.4 ×10⁹/L" in change.summary
    assert (change.old, change.new) == ("anc < 0.5 ×10⁹/L", "anc < 0.4 ×10⁹/L (written 400 /uL)")
    assert "0.40" in dict(diff.behaviour.thresholds)["anc"]


# --- an evaluated patient ---------------------------------------------------------------------------

def test_because_reads_the_canonical_threshold(folders: tuple[Path, Path]) -> None:
    result = engine.load(folders[1]).evaluate({"anc": 0.3})
    assert result.explanations["neutropenia_grade"] == ("by neutropenia-grade-severe: anc 0.3 ×10⁹/L < 0.5 ×10⁹/L",)
