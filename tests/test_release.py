"""Release checks: `guideline validate --release` and `guideline release` (releases.yaml).

An approved version's content digest is recorded once; afterwards any change to the content —
a threshold or a single word of a recommendation — is refused until the version changes. Every
test works on a copy: the bundled guideline stays a draft.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import position, replace_once

import engine
from engine import cli
from engine.products import release as _release

SCHEMA = Path(__file__).resolve().parent.parent / "schema" / "releases.schema.json"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>[a-z-]+): (?P<message>.+)$")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


def codes(output: str) -> list[str]:
    """The problem codes of `FILE:LINE:COL: code: message` lines, checking every line has that shape."""
    matches = [LINE.match(line) for line in output.splitlines()]
    assert matches, "no problems printed"
    assert all(matches), f"not all lines are located problems: {output!r}"
    keys = [(m["file"], int(m["line"]), int(m["col"]), m["code"]) for m in matches if m]
    assert keys == sorted(keys), f"problems not sorted: {output!r}"
    return [key[3] for key in keys]


def refused(err: str) -> str:
    """The problems of a refused `guideline release` (stderr: every problem, then the "release refused" line)."""
    *problems, last = err.splitlines()
    assert re.fullmatch(rf"release refused: {len(problems)} problem\(s\) in .+", last), err
    return "\n".join(problems)


def problem(output: str, code: str) -> re.Match[str]:
    """The first printed problem with this code."""
    return next(m for m in map(LINE.match, output.splitlines()) if m and m["code"] == code)


@pytest.fixture
def approved(bundled_copy: Path) -> Path:
    """A copy of the bundled guideline made releasable: approved, with a reviewer (and its effective date)."""
    replace_once(bundled_copy / "guideline.yaml", "status: draft", "status: approved")
    replace_once(bundled_copy / "guideline.yaml", "reviewers: []",
                 "reviewers:\n  - name: Dr Example Reviewer\n    role: haematologist")
    return bundled_copy


@pytest.fixture
def released(approved: Path) -> Path:
    code, out, err = run_cli(["release", str(approved), "--by", "Release Manager"])
    assert code == 0, out + err
    return approved


# --- the bundled guideline -----------------------------------------------------------------------

def test_bundled_guideline_is_a_draft_and_is_refused() -> None:
    assert engine.load().content.metadata.status == "draft"
    assert not (engine.BUNDLED_GUIDELINE / _release.RELEASES_FILE).exists()
    code, out, _ = run_cli(["validate", "--release", str(engine.BUNDLED_GUIDELINE)])
    assert code == 2
    assert set(codes(out)) >= {"release-status", "release-unrecorded"}
    # ...while the ordinary validation still passes.
    assert run_cli(["validate", str(engine.BUNDLED_GUIDELINE)])[0] == 0


# --- every refusal --------------------------------------------------------------------------------

REFUSALS = [
    # (name, edit of guideline.yaml (old, new) or None, expected codes, located at)
    ("draft", ("status: approved", "status: draft"), ["release-status"], "draft"),
    ("in-review", ("status: approved", "status: in-review"), ["release-status"], "in-review"),
    ("retired", ("status: approved", "status: retired"), ["release-status"], "retired"),
    ("no-reviewers", ("reviewers:\n  - name: Dr Example Reviewer\n    role: haematologist", "reviewers: []"),
     ["release-reviewers"], "[]"),
    ("reviewers-key-absent", ("reviewers:\n  - name: Dr Example Reviewer\n    role: haematologist\n", ""),
     ["release-reviewers"], "id:"),
    ("no-effective-date", ('effective_date: "2026-12-01"\n', ""), ["release-effective-date"], "id:"),
]


@pytest.mark.parametrize("name, edit, expected, anchor", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_metadata_refusal(released: Path, name: str, edit: tuple[str, str], expected: list[str],
                               anchor: str) -> None:
    guideline_yaml = replace_once(released / "guideline.yaml", *edit)
    before = (released / "releases.yaml").read_text(encoding="utf-8")
    # validate --release: the metadata problem, located; the edit also changed the digest.
    code, out, err = run_cli(["validate", "--release", str(released)])
    assert code == 2, out + err
    assert sorted(codes(out)) == sorted([*expected, "release-digest-mismatch"])
    m = problem(out, expected[0])
    assert m["file"].endswith("guideline.yaml")
    assert (int(m["line"]), int(m["col"])) == position(guideline_yaml, anchor)
    # release refuses too, and writes nothing.
    code, out, err = run_cli(["release", str(released)])
    assert code == 2 and out == ""
    assert expected[0] in codes(refused(err))
    assert (released / "releases.yaml").read_text(encoding="utf-8") == before


def test_unrecorded_version_is_refused(approved: Path, locate) -> None:
    code, out, _ = run_cli(["validate", "--release", str(approved)])
    assert code == 2
    assert codes(out) == ["release-unrecorded"]
    m = problem(out, "release-unrecorded")
    assert (int(m["line"]), int(m["col"])) == locate(approved / "guideline.yaml", "1.0.0")
    # a releases.yaml that records only other versions: still unrecorded
    (approved / "releases.yaml").write_text(
        f'releases:\n  - {{version: "0.9.0", digest: "sha256:{"a" * 64}", recorded: "2025-01-01"}}\n')
    code, out, _ = run_cli(["validate", "--release", str(approved)])
    assert code == 2 and codes(out) == ["release-unrecorded"]


def test_all_refusals_at_once_sorted(approved: Path) -> None:
    replace_once(approved / "guideline.yaml", "status: approved", "status: draft")
    replace_once(approved / "guideline.yaml", "reviewers:\n  - name: Dr Example Reviewer\n    role: haematologist",
                 "reviewers: []")
    replace_once(approved / "guideline.yaml", 'effective_date: "2026-12-01"\n', "")
    code, out, _ = run_cli(["validate", "--release", str(approved)])
    assert code == 2
    assert sorted(codes(out)) == ["release-effective-date", "release-reviewers", "release-status",
                                  "release-unrecorded"]


def test_release_refuses_an_invalid_guideline(approved: Path) -> None:
    (approved / "rules" / "zz-broken.yaml").write_text(
        "rules:\n  - id: broken\n    title: t\n    when: {fact: no_such_fact, is: true}\n"
        "    then: {recommend: fn-local-resistance}\n    citations: [1]\n", encoding="utf-8")
    code, _, err = run_cli(["release", str(approved)])
    assert code == 2 and "unknown-fact" in codes(refused(err))
    assert not (approved / "releases.yaml").exists()


# --- record, recheck, mismatch ---------------------------------------------------------------------

def test_record_then_recheck(released: Path) -> None:
    data = yaml.safe_load((released / "releases.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    (entry,) = data["releases"]
    guideline = engine.load(released)
    assert entry["version"] == guideline.version == "1.0.0"
    assert entry["digest"] == guideline.digest
    assert entry["by"] == "Release Manager"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", entry["recorded"])
    code, out, err = run_cli(["validate", "--release", str(released)])
    assert code == 0, out + err
    assert "release check passed: version 1.0.0" in out
    assert _release.validate(released, release=True) == []
    # recording again with the same content changes nothing
    before = (released / "releases.yaml").read_bytes()
    code, out, _ = run_cli(["release", str(released)])
    assert code == 0 and "already recorded" in out
    assert (released / "releases.yaml").read_bytes() == before


def test_content_edit_is_a_digest_mismatch(released: Path, locate) -> None:
    # A clinical threshold moves: transfuse below 8 g/dL instead of 7.
    rules = released / "rules" / "supportive-care.yaml"
    text = rules.read_text(encoding="utf-8")
    assert re.search(r"\{fact: hemoglobin, lt: 7(\.0)?", text), "anchor for the edit has moved"
    rules.write_text(re.sub(r"(\{fact: hemoglobin, lt: )7(\.0)?", r"\g<1>8", text, count=1), encoding="utf-8")
    before = (released / "releases.yaml").read_text(encoding="utf-8")
    code, out, _ = run_cli(["validate", "--release", str(released)])
    assert code == 2
    assert codes(out) == ["release-digest-mismatch"]
    m = problem(out, "release-digest-mismatch")
    assert m["file"].endswith("releases.yaml")
    assert (int(m["line"]), int(m["col"])) == locate(released / "releases.yaml", '"sha256:')
    assert engine.load(released).digest in m["message"]
    # the ordinary validation has no objection: the content is valid, just not the released content
    assert run_cli(["validate", str(released)])[0] == 0
    # release refuses to record a second digest for the same version
    code, _, err = run_cli(["release", str(released)])
    assert code == 2 and codes(refused(err)) == ["release-digest-mismatch"]
    assert (released / "releases.yaml").read_text(encoding="utf-8") == before


WORDING_EDITS = [
    ("catalogue-title", "catalogue.yaml", "title: Take cultures before the first antibiotic dose",
     "title: Take cultures before the first antibiotic dose."),
    ("catalogue-text", "catalogue.yaml", "as effective", "as efficacious"),
    ("rule-rationale", "rules/antibiotics.yaml", "beta-lactam monotherapy equals", "beta-lactam monotherapy matches"),
]


@pytest.mark.parametrize("name, file, old, new", WORDING_EDITS, ids=[w[0] for w in WORDING_EDITS])
def test_wording_only_edit_is_caught(released: Path, name: str, file: str, old: str, new: str) -> None:
    replace_once(released / file, old, new)
    code, out, _ = run_cli(["validate", "--release", str(released)])
    assert code == 2 and codes(out) == ["release-digest-mismatch"]


def test_comment_and_layout_edits_are_not_content_changes(released: Path) -> None:
    catalogue = released / "catalogue.yaml"
    catalogue.write_text("# a comment an editor added\n\n" + catalogue.read_text(encoding="utf-8") + "\n# end\n",
                         encoding="utf-8")
    assert run_cli(["validate", "--release", str(released)])[0] == 0


def test_new_version_is_recorded_beside_the_old_one(released: Path) -> None:
    replace_once(released / "catalogue.yaml", "Take cultures before the first antibiotic dose",
                 "Take cultures before the first antibiotic dose.")
    replace_once(released / "releases.yaml", "releases:\n", "releases:\n  # 1.0.0: approved by the committee\n")
    replace_once(released / "guideline.yaml", "version: 1.0.0", "version: 1.1.0")
    code, out, err = run_cli(["release", str(released), "--by", "Release Manager"])
    assert code == 0, out + err
    text = (released / "releases.yaml").read_text(encoding="utf-8")
    assert "# 1.0.0: approved by the committee" in text  # appended, the editors' comment kept
    versions = [e["version"] for e in yaml.safe_load(text)["releases"]]
    assert versions == ["1.0.0", "1.1.0"]
    assert run_cli(["validate", "--release", str(released)])[0] == 0


def test_an_unextendable_layout_is_rewritten(approved: Path) -> None:
    (approved / "releases.yaml").write_text("releases: []\n", encoding="utf-8")
    assert run_cli(["release", str(approved)])[0] == 0
    assert [e["version"] for e in yaml.safe_load((approved / "releases.yaml").read_text())["releases"]] == ["1.0.0"]
    assert run_cli(["validate", "--release", str(approved)])[0] == 0


# --- releases.yaml: outside the digest, validated when present -------------------------------------

def test_releases_file_does_not_feed_the_digest(released: Path) -> None:
    with_file = engine.load(released).digest
    replace_once(released / "releases.yaml", "Release Manager", "Someone Else")
    assert engine.load(released).digest == with_file
    (released / "releases.yaml").unlink()
    assert engine.load(released).digest == with_file


BAD_RELEASE_FILES = [
    ("unknown-key", 'releases:\n  - {version: "1.0.0", digest: "sha256:%s", recorded: "2026-01-01", note: x}\n'
     % ("a" * 64), "unknown-key"),
    ("bad-digest", 'releases:\n  - {version: "1.0.0", digest: "md5:abc", recorded: "2026-01-01"}\n', "schema"),
    ("bad-date", 'releases:\n  - {version: "1.0.0", digest: "sha256:%s", recorded: "yesterday"}\n' % ("a" * 64),
     "schema"),
    ("missing-digest", 'releases:\n  - {version: "1.0.0", recorded: "2026-01-01"}\n', "missing-key"),
    ("duplicate-version", (f'releases:\n  - {{version: "1.0.0", digest: "sha256:{"a" * 64}", recorded: "2026-01-01"}}\n'
                           f'  - {{version: "1.0.0", digest: "sha256:{"b" * 64}", recorded: "2026-01-02"}}\n'),
     "duplicate-version"),
    ("yaml-syntax", "releases: [\n", "yaml-syntax"),
]


@pytest.mark.parametrize("name, text, expected", BAD_RELEASE_FILES, ids=[b[0] for b in BAD_RELEASE_FILES])
def test_ordinary_validate_checks_the_releases_file(bundled_copy: Path, name: str, text: str,
                                                    expected: str) -> None:
    (bundled_copy / "releases.yaml").write_text(text, encoding="utf-8")
    code, out, _ = run_cli(["validate", str(bundled_copy)])
    assert code == 2
    assert codes(out) == [expected]
    m = problem(out, expected)
    assert m["file"].endswith("releases.yaml")
    if name == "duplicate-version":
        assert int(m["line"]) == 3  # the second entry


def test_release_rejects_a_broken_releases_file(approved: Path) -> None:
    (approved / "releases.yaml").write_text(BAD_RELEASE_FILES[4][1], encoding="utf-8")
    code, _, err = run_cli(["release", str(approved)])
    assert code == 2 and codes(refused(err)) == ["duplicate-version"]


def test_release_of_a_missing_folder(tmp_path: Path) -> None:
    code, _, err = run_cli(["release", str(tmp_path / "nowhere")])
    assert code == 2 and codes(refused(err)) == ["no-guideline"]


def test_release_without_a_name(approved: Path) -> None:
    assert run_cli(["release", str(approved), "--by", " "])[0] == 0
    (entry,) = yaml.safe_load((approved / "releases.yaml").read_text(encoding="utf-8"))["releases"]
    assert "by" not in entry
    assert run_cli(["validate", "--release", str(approved)])[0] == 0
