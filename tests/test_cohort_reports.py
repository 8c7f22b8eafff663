"""What a cohort run reports: the summary (JSON keys and counts, the HTML in a real browser) and
`guideline diff --cohort` (counts checked against evaluating every patient on both versions)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once
from test_cohort import _synth
from test_render import CHROMIUM, png_pixels, run_chromium

import engine
from engine import cli
from engine.products.diff import compare as _diff


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    _synth().write(60, out, seed=3)
    return out / "patients.ndjson"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main(list(argv), out=out, err=err, stdin=io.StringIO("")), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def summarised(patients: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run with one bad line, its rows and both summaries."""
    folder = tmp_path_factory.mktemp("summary")
    source = folder / "in.ndjson"
    source.write_text(patients.read_text(encoding="utf-8") + '{"id": "bad", "facts": {"anc": "x"}}\n', encoding="utf-8")
    results = {}
    for suffix in (".json", ".html"):
        code, out, err = run("cohort", str(source), "--scheduler", scheduler, "--summary", str(folder / f"s{suffix}"))
        assert code == 0, err
        results[suffix] = out
    assert results[".json"] == results[".html"]
    return {"rows": [json.loads(line) for line in results[".json"].splitlines()],
            "json": json.loads((folder / "s.json").read_text(encoding="utf-8")), "html": folder / "s.html"}


def test_the_summary_json_counts_what_the_rows_say(summarised: dict[str, Any], guideline: engine.Guideline) -> None:
    rows, summary = summarised["rows"], summarised["json"]
    assert {"patients", "evaluated", "invalid", "codes", "missing", "guideline"} <= set(summary)
    assert {"urgency", "applicability", "derived", "throughput", "seconds", "workers"} <= set(summary)
    evaluated = [r for r in rows if r["status"] == "evaluated"]
    assert (summary["patients"], summary["evaluated"], summary["invalid"]) == (61, 60, 1)
    assert summary["guideline"]["digest"] == guideline.digest
    codes = Counter(c for r in evaluated for c in r["codes"])
    assert summary["codes"] == {code: codes.get(code, 0) for code in guideline.content.catalogue}
    assert summary["missing"] == dict(sorted(Counter(f for r in evaluated for f in r["missing"]).items(),
                                             key=lambda t: (-t[1], t[0])))
    urgency = Counter(guideline.content.catalogue[c].urgency for r in evaluated for c in r["codes"])
    assert {k: v for k, v in summary["urgency"].items() if v} == dict(urgency)
    for fact, counts in summary["derived"].items():
        assert sum(counts.values()) == 60, fact
    assert summary["derived"]["neutropenia_grade"]["unknown"] == sum(
        r["derived"]["neutropenia_grade"] is None for r in evaluated)
    bands = summary["derived"]["anc"]  # binned at the guideline's own ANC thresholds
    assert list(bands)[0].startswith("< 0.1") and sum(
        n for label, n in bands.items() if label.startswith("< 0.1")) == sum(
        r["derived"]["anc"] is not None and r["derived"]["anc"] < 0.1 for r in evaluated)


def test_the_summary_html_is_self_contained(summarised: dict[str, Any]) -> None:
    text = summarised["html"].read_text(encoding="utf-8")
    assert "<svg" in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "<script" not in text and "<link" not in text
    for heading in ("Recommendations by urgency", "Derived facts", "Missing data"):
        assert heading in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed; "
                                              "install it with: apt-get install -y chromium")
def test_the_summary_html_opens_in_a_browser_with_its_charts(summarised: dict[str, Any], tmp_path: Path) -> None:
    shot = tmp_path / "summary.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1800", summarised["html"].as_uri())
    assert shot.exists(), done.stderr[-2000:]
    width, height, pixels_rows = png_pixels(shot)
    pixels = b"".join(pixels_rows)
    colours = Counter(pixels[i:i + 3] for i in range(0, len(pixels), 3 * 5))
    white = colours.pop(b"\xff\xff\xff", 0)
    assert sum(colours.values()) > 0.05 * (white + sum(colours.values()))  # bars and text, not a blank page
    for bar in ("b91c1c", "1d4ed8", "0f766e"):  # immediate, routine and derived-fact bars are drawn
        assert colours[bytes.fromhex(bar)] > 100, bar
    dom = run_chromium(tmp_path, "--dump-dom", summarised["html"].as_uri())
    assert dom.returncode == 0 and dom.stdout.count("<svg") >= 5


def test_diff_cohort_counts_what_each_patient_gains_and_loses(patients: Path, scheduler: str, bundled_copy: Path,
                                                              guideline: engine.Guideline,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_diff, "BASES_PER_FACT", 1)  # the boundary patients are test_diff.py's subject
    replace_once(bundled_copy / "rules" / "febrile-neutropenia.yaml", "- {fact: anc, lt: 0.5, unit: 10*9/L}\n"
                 "            - {fact: anc_expected", "- {fact: anc, lt: 0.6, unit: 10*9/L}\n"
                 "            - {fact: anc_expected")
    replace_once(bundled_copy / "guideline.yaml", "version: 1.0.0", "version: 1.1.0")
    new = engine.load(bundled_copy)
    added, removed, changed = Counter(), Counter(), 0
    for line in patients.read_text(encoding="utf-8").splitlines():
        facts = json.loads(line)["facts"]
        a, b = guideline.evaluate(facts), new.evaluate(facts)
        added.update(set(b.codes) - set(a.codes))
        removed.update(set(a.codes) - set(b.codes))
        changed += a.codes != b.codes or a.derived != b.derived
    assert changed, "the edit must change some patients of the cohort for this test to mean anything"
    code, out, err = run("diff", str(engine.BUNDLED_GUIDELINE), str(bundled_copy), "--cohort", str(patients),
                         "--scheduler", scheduler, "--format", "json")
    assert code == 0, err
    cohort = json.loads(out)["cohort"]
    assert (cohort["patients"], cohort["changed"]) == (60, changed)
    assert {c: v["added"] for c, v in cohort["codes"].items() if v["added"]} == dict(added)
    assert {c: v["removed"] for c, v in cohort["codes"].items() if v["removed"]} == dict(removed)
    some = next(iter(cohort["codes"].values()))
    assert 1 <= len(some["examples"]["added"] or some["examples"]["removed"]) <= 3
    code, text, _ = run("diff", str(engine.BUNDLED_GUIDELINE), str(bundled_copy), "--cohort", str(patients),
                        "--scheduler", scheduler)
    assert f"IMPACT ON THE COHORT: {changed} of 60 patients change" in text
    top, count = added.most_common(1)[0]
    assert any(line.split()[:2] == [top, str(count)] for line in text.splitlines()), text


def test_cohort_flags_of_diff_go_with_cohort() -> None:
    code, _, err = run("diff", str(engine.BUNDLED_GUIDELINE), str(engine.BUNDLED_GUIDELINE), "--workers", "2")
    assert code == 2 and "go with --cohort INPUT" in err
