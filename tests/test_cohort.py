"""`guideline cohort` (contract section 10): NDJSON and FHIR Bulk Data input, one row per patient, on a
real Dask cluster; the Guideline shipped by content and its digest checked on the workers."""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import cli
from engine.cohort import bulk, execute, ndjson, work
from engine.errors import RuleEngineError
from engine.guideline import _rebuild

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-06-01"


def _synth() -> Any:
    spec = importlib.util.spec_from_file_location("synth", ROOT / "benchmarks" / "synth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    _synth().write(40, out, seed=7)
    return out


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# --- the Guideline crosses a process boundary by content --------------------------------------------

def test_a_guideline_pickles_by_content_and_evaluates_the_same(guideline: engine.Guideline) -> None:
    copy = pickle.loads(pickle.dumps(guideline))
    assert copy.digest == guideline.digest and copy is not guideline
    for facts in ({}, {"anc": 0.3, "temperature": 38.6, "age": 50}, {"anc": 2.0, "wbc": 3.5}):
        assert copy.evaluate(facts).to_dict() == guideline.evaluate(facts).to_dict()


def test_a_tampered_payload_is_refused(guideline: engine.Guideline) -> None:
    rebuild, (texts, digest, label) = guideline.__reduce__()
    assert rebuild is _rebuild
    name = next(n for n in texts if "febrile" in n)
    altered = {**texts, name: texts[name].replace("lt: 0.5", "lt: 0.6", 1)}
    assert altered != texts
    with pytest.raises(RuleEngineError, match="rebuilds with digest"):
        _rebuild(altered, digest, label)
    with pytest.raises(RuleEngineError, match="outside its folder"):
        _rebuild({**texts, "../escape.yaml": "x"}, digest, label)
    with pytest.raises(RuleEngineError, match="does not rebuild"):
        _rebuild({k: v for k, v in texts.items() if k != "facts.yaml"}, digest, label)


def test_workers_refuse_a_digest_other_than_the_drivers(scheduler: str, guideline: engine.Guideline) -> None:
    lines = [ndjson.Line(1, b'{"id": "a", "facts": {"anc": 0.3}}\n')]
    with execute.client(scheduler=scheduler) as dask_client:
        shipped = execute.ship(dask_client, guideline)
        good = list(execute.ordered_map(dask_client, work.evaluate_batch, [shipped, guideline.digest],
                                        [(work.NDJSON, lines, None)], 2))
        assert good[0].ids == ["a"]
        with pytest.raises(RuleEngineError, match="but the run is on sha256:0000"):
            list(execute.ordered_map(dask_client, work.evaluate_batch, [shipped, "sha256:" + "0" * 64],
                                     [(work.NDJSON, lines, None)], 2))


# --- rows ------------------------------------------------------------------------------------------

def test_ndjson_and_a_bulk_data_export_give_the_same_rows(scheduler: str, cohort: Path) -> None:
    code, flat, _ = run("cohort", str(cohort / "patients.ndjson"), "--scheduler", scheduler)
    assert code == 0
    code, fhir, err = run("cohort", str(cohort / "bulk"), "--facts", str(cohort / "bulk-extra.ndjson"),
                          "--as-of", AS_OF, "--scheduler", scheduler)
    assert code == 0, err
    a, b = rows(flat), rows(fhir)
    assert len(a) == len(b) == 40
    assert all(r["status"] == "evaluated" for r in a + b)
    # FHIR rows may say what the reader skipped (a Patient without birthDate); the rest is identical.
    assert [{k: v for k, v in r.items() if k != "notes"} for r in a] == \
        [{k: v for k, v in r.items() if k != "notes"} for r in b]
    assert any(r["codes"] for r in a) and any(r["missing"] for r in a)
    assert {r["guideline"]["digest"] for r in a} == {engine.load().digest}


BAD = [
    '{"id": "ok-1", "facts": {"anc": 0.3, "temperature": 38.6}}',
    '{"id": "broken", "facts": {"anc": 0.3',
    '{"id": "unknown-fact", "facts": {"anx": 0.3}}',
    '{"id": "wrong-type", "facts": {"anc": "low"}}',
    '{"facts": {"anc": 1.0}}',
    '',
    '{"id": "ok-1", "facts": {}}',
    '[1, 2]',
    '{"id": 7, "facts": {}}',
    '{"id": "twice", "id": "twice", "facts": {}}',
    '{"id": "ok-2", "facts": {"anc": 2.0}, "extra": 1}',
    '{"id": "ok-3", "facts": {"anc": 2.0}}',
]


def test_bad_lines_are_invalid_rows_naming_the_line_and_nothing_is_dropped(scheduler: str) -> None:
    code, out, err = run("cohort", "-", "--scheduler", scheduler, stdin="\n".join(BAD) + "\n")
    assert code == 0, err
    got = rows(out)
    assert len(got) == len([b for b in BAD if b.strip()])  # the blank line is no patient
    by_line = dict(zip([i + 1 for i, b in enumerate(BAD) if b.strip()], got))
    assert by_line[1]["status"] == "evaluated" and by_line[1]["codes"]
    expected = {2: "malformed JSON", 3: "unknown fact (did you mean 'anc'?)", 4: "expected a number",
                5: 'no "id"', 7: "id 'ok-1' was already given at line 1", 8: "a patient is a JSON object",
                9: '"id" must be a non-empty string', 10: "given twice", 11: "unexpected key(s) extra"}
    for line, words in expected.items():
        row = by_line[line]
        assert row["status"] == "invalid" and row["codes"] == [] and row["derived"] == {}, row
        assert any(p.startswith(f"line {line}:") and words in p for p in row["problems"]), (line, row["problems"])
    assert by_line[12]["status"] == "evaluated"
    assert "cohort: 11 patients, 2 evaluated, 9 invalid" in err  # the closing line counts them


def test_rows_carry_applicability_as_the_result_says_it(scheduler: str) -> None:
    """Contract sections 7 and 10: a child gets no code, an adult the FN actions, unknown age is said."""
    febrile = {"anc": 0.3, "temperature": 39.0}
    lines = [json.dumps({"id": pid, "facts": {**febrile, **age}}) for pid, age in
             (("child", {"age": 4}), ("adult", {"age": 45}), ("unknown", {}))]
    code, out, err = run("cohort", "-", "--scheduler", scheduler, stdin="\n".join(lines) + "\n")
    assert code == 0, err
    child, adult, unknown = rows(out)
    assert child["applicability"]["status"] == "does-not-apply" and child["codes"] == []
    assert adult["applicability"]["status"] == "applies" and "fn-empirical-iv-antibiotics" in adult["codes"]
    assert unknown["applicability"]["status"] == "undetermined" and "age" in unknown["missing"]
    assert unknown["codes"] == adult["codes"]


def test_an_over_long_line_is_skipped_to_its_end_not_held() -> None:
    stream = io.BytesIO(b'{"id": "a", "facts": {}}\n' + b"x" * 5000 + b"\n" + b'{"id": "b", "facts": {}}\n')
    got = list(ndjson.lines(stream, max_bytes=100))
    assert [(g.number, g.data is None) for g in got] == [(1, False), (2, True), (3, False)]
    assert got[1].length == 5001
    assert "longer than" in ndjson.patient(got[1], "line 2")[2][0]


def test_dask_keeps_no_copy_of_the_batches_it_sends() -> None:
    """Dask's batched streams log their last 1,000 messages; each is a batch of patients, so with the
    log the driver grew ~2 KB per patient (1.8 GB for 10^6). The embedded cluster runs without it."""
    from engine.cohort import execute

    with execute.client(1) as embedded:
        assert embedded.scheduler_comm.recent_message_log.maxlen == 0
        streams = embedded.cluster.scheduler.stream_comms.values()  # the scheduler's to its workers
        assert streams and all(s.recent_message_log.maxlen == 0 for s in streams)


def test_the_embedded_cluster_and_an_existing_one_write_the_same_rows(scheduler: str, cohort: Path) -> None:
    source = str(cohort / "patients.ndjson")
    code, embedded, err = run("cohort", source, "--workers", "1")
    assert code == 0, err
    assert "on 1 worker" in err and "\x1b" not in err and "\r" not in err  # no progress bar off a terminal
    assert run("cohort", source, "--scheduler", scheduler)[1] == embedded


def test_unusable_input_exits_2(tmp_path: Path, scheduler: str, cohort: Path, monkeypatch: pytest.MonkeyPatch,
                                bundled_copy: Path) -> None:
    flat = str(cohort / "patients.ndjson")
    cases = [
        (["cohort", str(tmp_path / "none.ndjson")], "no such file or folder"),
        (["cohort", flat, "--facts", flat], "--facts and --as-of go with a FHIR Bulk Data export folder"),
        (["cohort", flat, "--summary", str(tmp_path / "s.txt")], "the summary is .json or .html"),
        (["cohort", str(tmp_path)], "no *.ndjson files"),
        (["cohort", flat, "-o", str(tmp_path / "no" / "out.ndjson")], "cannot write"),
        (["cohort", flat, "--workers", "2", "--scheduler", scheduler], "--workers is for the embedded cluster"),
    ]
    for argv, words in cases:
        code, _, err = run(*argv)
        assert code == 2 and words in err, (argv, err)
    (bundled_copy / "catalogue.yaml").write_text("recommendations: 3\n", encoding="utf-8")
    code, _, err = run("cohort", flat, "--guideline", str(bundled_copy))
    assert code == 2 and "the guideline is invalid" in err
    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", 1.0)
    code, _, err = run("cohort", flat, "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err


# --- Bulk Data grouping ----------------------------------------------------------------------------------

def _reference_groups(folder: Path, extra: Path) -> dict[str, list[str]]:
    """Grouping the simple way, everything in one dict: what the external sort must reproduce."""
    found: dict[str, list[str]] = {}
    for path in bulk.export_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            data = json.loads(line)
            key = (f"Patient/{data['id']}" if data["resourceType"] == "Patient"
                   else data["subject"]["reference"])
            found.setdefault(key, []).append(f"{path.name}:{number}")
    for number, line in enumerate(extra.read_text(encoding="utf-8").splitlines(), 1):
        found.setdefault(f"Patient/{json.loads(line)['id']}", []).append(f"{extra.name}:{number}")
    return dict(sorted(found.items()))


def test_grouping_in_tiny_chunks_gives_the_groups_of_an_in_memory_grouping(cohort: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spilled: list[int] = []
    real = bulk._spill
    monkeypatch.setattr(bulk, "_spill", lambda chunk, d, i: spilled.append(len(chunk)) or real(chunk, d, i))
    extra = cohort / "bulk-extra.ndjson"
    got = {g.key: [w for w, _ in g.resources + g.extras] for g in bulk.groups(cohort / "bulk", extra, chunk_size=7)}
    assert len(spilled) > 50 and max(spilled) <= 7  # it really went through files on disk
    assert list(got) == list(_reference_groups(cohort / "bulk", extra))
    assert got == _reference_groups(cohort / "bulk", extra)


def test_export_lines_that_belong_to_no_patient_become_invalid_rows(tmp_path: Path, scheduler: str) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    patient = {"resourceType": "Patient", "id": "a", "birthDate": "1970-01-01"}
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/a"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
           "effectiveDateTime": "2026-05-30T08:00:00Z",
           "valueQuantity": {"value": 0.3, "unit": "10*9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"}}
    stray = {**obs, "id": "o2", "subject": {"reference": "Patient/ghost"}}
    (folder / "Patient.ndjson").write_text(json.dumps(patient) + "\n", encoding="utf-8")
    (folder / "Observation.ndjson").write_text("\n".join([
        json.dumps(obs), '{"resourceType": "Observation", "id": "o3"', json.dumps({**obs, "id": "o4", "subject": None}),
        json.dumps(stray)]) + "\n", encoding="utf-8")
    (folder / "Encounter.ndjson").write_text('{"resourceType": "Encounter", "id": "e"}\n', encoding="utf-8")
    extra = tmp_path / "extra.ndjson"
    extra.write_text('{"id": "a", "facts": {"temperature": 38.6}}\n{"id": "a", "facts": {"copd": false}}\n',
                     encoding="utf-8")
    code, out, err = run("cohort", str(folder), "--facts", str(extra), "--as-of", AS_OF, "--scheduler", scheduler)
    assert code == 0, err
    got = rows(out)
    problems = [p for r in got for p in r["problems"]]
    assert len(got) == 4 and all(r["status"] == "invalid" for r in got)
    assert any(p.startswith("Observation.ndjson:2: malformed JSON") for p in problems), problems
    assert any(p.startswith("Observation.ndjson:3: Observation/o4 has no subject.reference") for p in problems)
    assert any("the export has no Patient resource Patient/ghost (Observation.ndjson:4" in p for p in problems)
    assert any("extra facts for Patient/a are given more than once (extra.ndjson:1, extra.ndjson:2)" in p
               for p in problems)
    assert [r["id"] for r in got] == [None, None, "a", "ghost"]  # lines of no patient first, then by reference
    assert "not read (no fact comes from them): 1 Encounter" in err


def test_a_fact_given_in_the_extra_facts_and_by_fhir_is_an_invalid_row(tmp_path: Path, scheduler: str,
                                                                       cohort: Path) -> None:
    extra = tmp_path / "extra.ndjson"
    first = json.loads((cohort / "patients.ndjson").read_text(encoding="utf-8").splitlines()[0])
    fact = next(f for f in ("anc", "wbc", "temperature", "hemoglobin") if f in first["facts"])
    extra.write_text(json.dumps({"id": first["id"], "facts": {fact: first["facts"][fact]}}) + "\n", encoding="utf-8")
    code, out, _ = run("cohort", str(cohort / "bulk"), "--facts", str(extra), "--as-of", AS_OF,
                       "--scheduler", scheduler)
    got = rows(out)
    assert code == 0 and len(got) == 40
    assert got[0]["status"] == "invalid"
    assert any(f"{fact}: given in the extra facts and read from FHIR" in p for p in got[0]["problems"])


def test_a_cluster_without_a_worker_is_named_not_waited_on_forever(cohort: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", 1.0)
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as empty:
        code, out, err = run("cohort", str(cohort / "patients.ndjson"), "--scheduler", empty.scheduler_address)
    assert code == 2 and "has no worker" in err and out == ""


def test_a_terminal_gets_a_progress_bar(scheduler: str, cohort: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    assert cli.main(["cohort", str(cohort / "patients.ndjson"), "--scheduler", scheduler], out=io.StringIO(),
                    err=err) == 0
    assert "\r" in err.getvalue() and " patients/s]" in err.getvalue()  # tqdm's bar, then the closing line
    assert err.getvalue().rstrip().endswith("on 2 workers)")


def test_no_missing_rows_equal_the_full_rows_but_say_missing_was_not_computed(tmp_path: Path, scheduler: str,
                                                                              cohort: Path) -> None:
    """`--no-missing` runs the ruleset without the rules that only record missing facts: the same codes,
    derived facts and applicability on every row, and `missing` null (not computed), never []."""
    source = tmp_path / "patients.ndjson"
    source.write_text((cohort / "patients.ndjson").read_text() + "\n".join(BAD) + "\n")
    code, full, _ = run("cohort", str(source), "--scheduler", scheduler, "--summary", str(tmp_path / "a.json"))
    assert code == 0
    code, lean, _ = run("cohort", str(source), "--scheduler", scheduler, "--no-missing",
                        "--summary", str(tmp_path / "b.json"))
    assert code == 0
    a, b = rows(full), rows(lean)
    assert len(a) == len(b) == 40 + len([line for line in BAD if line.strip()])
    for x, y in zip(a, b, strict=True):
        if x["status"] == "evaluated":
            assert y["missing"] is None
            assert {**x, "missing": None} == y
        else:
            assert x == y
    assert any(r["missing"] for r in a if r["status"] == "evaluated")
    counts, without = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert counts["missing"] and without["missing"] is None
    assert {k: v for k, v in counts.items() if k not in ("missing", "seconds", "throughput")} == \
        {k: v for k, v in without.items() if k not in ("missing", "seconds", "throughput")}
    code, _, _ = run("cohort", str(source), "--scheduler", scheduler, "--no-missing", "-o", str(tmp_path / "r.ndjson"),
                     "--summary", str(tmp_path / "b.html"))
    assert code == 0 and "Not computed" in (tmp_path / "b.html").read_text()
