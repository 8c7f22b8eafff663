"""The evaluation audit log: a hash chain of JSON lines that shows any edit, and survives crashes.

Tampering (edit any field, delete, swap, insert) is reported at the first broken line; concurrent
writers (threads and processes) never fork the chain; a writer killed at any moment leaves a log
that verifies, and the next writer continues the chain.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import cli
from engine.products import audit as _audit

REPO = Path(__file__).resolve().parent.parent
PATIENTS: list[dict[str, Any]] = [
    {"anc": 0.3, "temperature": 38.6},
    {"anc": {"value": 300, "unit": "/uL"}, "temperature": {"value": 101.5, "unit": "[degF]"}, "age": 45},
    {"anc": 0.8, "on_tki": True, "temperature": 36.9},
    {"hemoglobin": 6.5},
    {},
] + [json.loads(p.read_text(encoding="utf-8")) for p in sorted((REPO / "examples").glob("*.json"))]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


def lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines()


def write_lines(log: Path, content: list[str]) -> None:
    log.write_text("".join(line + "\n" for line in content), encoding="utf-8")


def broken_at(log: Path) -> tuple[int | None, str]:
    outcome = engine.verify_audit_log(log)
    return outcome.line, outcome.code


@pytest.fixture
def log(tmp_path: Path, guideline: engine.Guideline) -> Path:
    """A log of 6 evaluations of different patients."""
    path = tmp_path / "audit.log"
    audit = engine.AuditLog(path)
    for patient in PATIENTS[:6]:
        guideline.evaluate(patient, audit_log=audit)
    return path


# --- the chain ---------------------------------------------------------------------------------------

def test_chain_over_several_evaluations_verifies(log: Path, guideline: engine.Guideline) -> None:
    outcome = engine.verify_audit_log(log)
    assert outcome.valid and outcome.count == 6
    records = [json.loads(line) for line in lines(log)]
    assert records[0]["prev"] == _audit.GENESIS
    for i, record in enumerate(records):
        assert set(record) == {"v", "seq", "time", "event", "guideline", "input", "codes", "result", "prev", "hash"}
        assert record["seq"] == i + 1 and record["event"] == "evaluation"
        assert record["guideline"] == {"id": guideline.id, "version": guideline.version, "digest": guideline.digest}
        assert record["time"].endswith("Z")
        if i:
            assert record["prev"] == records[i - 1]["hash"]
    assert outcome.head == records[-1]["hash"]


def test_a_line_records_the_input_and_the_result(tmp_path: Path, guideline: engine.Guideline) -> None:
    audit = engine.AuditLog(tmp_path / "a.log")
    result = guideline.evaluate({"anc": {"value": 300, "unit": "/uL"}, "temperature": 38.6, "age": None},
                                audit_log=audit)
    # the same patient in canonical units, without the unknown age: the same input digest
    guideline.evaluate({"temperature": 38.6, "anc": 0.3}, audit_log=audit)
    first, second = (json.loads(line) for line in lines(tmp_path / "a.log"))
    assert first["input"] == second["input"] == _audit.sha256('{"anc":0.3,"temperature":38.6}')
    assert first["codes"] == result.codes
    assert first["result"] == _audit.sha256(_audit.canonical_json(result.to_dict()))


def test_rejected_input_writes_nothing(tmp_path: Path, guideline: engine.Guideline) -> None:
    with pytest.raises(engine.InputFactsError):
        guideline.evaluate({"anc": "low"}, audit_log=engine.AuditLog(tmp_path / "a.log"))
    assert not (tmp_path / "a.log").exists() or (tmp_path / "a.log").read_bytes() == b""


def test_empty_log_is_valid(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"")
    outcome = engine.verify_audit_log(tmp_path / "a.log")
    assert outcome.valid and outcome.count == 0 and outcome.head == _audit.GENESIS


# --- tampering ---------------------------------------------------------------------------------------

def _altered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    if isinstance(value, list):
        return value[1:] if value else ["fn-forged"]
    if isinstance(value, dict):
        key = min(value)
        return {**value, key: _altered(value[key])}
    raise AssertionError(value)


FIELDS = sorted(_audit.FIELDS["evaluation"])


@pytest.mark.parametrize("field", FIELDS)
def test_editing_any_field_of_any_line_is_detected_there(log: Path, field: str) -> None:
    original = lines(log)
    for number in range(1, len(original) + 1):
        edited = list(original)
        record = json.loads(edited[number - 1])
        record[field] = _altered(record[field])
        edited[number - 1] = _audit.canonical_json(record)  # a careful edit: still canonical JSON
        write_lines(log, edited)
        line, code = broken_at(log)
        assert line == number, (field, number, code)
        # `hash` is computed over everything else, so every edit is an own-hash failure, except
        # that an altered `event` names no known event, whose fields could not even be checked
        assert code == ("audit-fields" if field == "event" else "audit-hash"), (field, number, code)


def test_editing_a_line_and_its_hash_is_detected_at_the_next_line(log: Path) -> None:
    edited = lines(log)
    record = json.loads(edited[2])
    record["codes"] = ["fn-forged"]
    del record["hash"]
    edited[2] = _audit.canonical_json(_audit._sealed(record))
    write_lines(log, edited)
    assert broken_at(log) == (4, "audit-chain")


@pytest.mark.parametrize("edit", ["space", "reorder-keys", "not-json", "not-object", "unknown-event",
                                  "extra-field", "missing-field", "bad-type", "not-utf8", "crlf"])
def test_any_byte_edit_is_detected(log: Path, edit: str) -> None:
    data = lines(log)
    record = json.loads(data[1])
    if edit == "space":
        data[1] = data[1].replace(":", ": ", 1)
    elif edit == "reorder-keys":
        data[1] = json.dumps(dict(reversed(list(record.items()))), separators=(",", ":"))
    elif edit == "not-json":
        data[1] = data[1][:-1]
    elif edit == "not-object":
        data[1] = "[]"
    elif edit == "unknown-event":
        data[1] = _audit.canonical_json({**record, "event": "forged"})
    elif edit == "extra-field":
        data[1] = _audit.canonical_json({**record, "note": "x"})
    elif edit == "missing-field":
        data[1] = _audit.canonical_json({k: v for k, v in record.items() if k != "codes"})
    elif edit == "bad-type":
        data[1] = _audit.canonical_json({**record, "seq": "2"})
    if edit == "not-utf8":
        raw = log.read_bytes().split(b"\n")
        raw[1] = raw[1] + b"\xff"
        log.write_bytes(b"\n".join(raw))
    elif edit == "crlf":
        log.write_bytes(log.read_bytes().replace(b"\n", b"\r\n", 2))
    else:
        write_lines(log, data)
    line, code = broken_at(log)
    assert line == (1 if edit == "crlf" else 2), code


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_deleting_a_line_is_detected(log: Path, number: int) -> None:
    data = lines(log)
    del data[number - 1]
    write_lines(log, data)
    assert broken_at(log) == (number, "audit-chain")


def test_deleting_the_last_lines_is_not_detectable_by_the_chain_alone(log: Path) -> None:
    """Documented limit: truncation leaves a valid, shorter chain. Keep the head elsewhere."""
    head = engine.verify_audit_log(log).head
    write_lines(log, lines(log)[:-1])
    outcome = engine.verify_audit_log(log)
    assert outcome.valid and outcome.count == 5 and outcome.head != head


@pytest.mark.parametrize("first", [1, 2, 3, 4, 5])
def test_swapping_two_lines_is_detected(log: Path, first: int) -> None:
    data = lines(log)
    data[first - 1], data[first] = data[first], data[first - 1]
    write_lines(log, data)
    assert broken_at(log) == (first, "audit-chain")


def test_swapping_distant_lines_is_detected(log: Path) -> None:
    data = lines(log)
    data[1], data[4] = data[4], data[1]
    write_lines(log, data)
    assert broken_at(log) == (2, "audit-chain")


@pytest.mark.parametrize("at", [1, 3, 6, 7])
def test_inserting_a_copied_line_is_detected_there(log: Path, at: int) -> None:
    data = lines(log)
    data.insert(at - 1, data[4])  # a genuine line, in the wrong place
    write_lines(log, data)
    line, code = broken_at(log)
    assert line == at, code


@pytest.mark.parametrize("at", [1, 3, 6])
def test_inserting_a_well_forged_line_is_detected(log: Path, at: int) -> None:
    """A forgery with a correct own hash, chained to the line before it, breaks the line after it."""
    data = lines(log)
    template = json.loads(data[0])
    prev = json.loads(data[at - 2])["hash"] if at > 1 else _audit.GENESIS
    body = {k: v for k, v in template.items() if k != "hash"}
    forged = _audit._sealed({**body, "codes": ["fn-forged"], "seq": at, "prev": prev})
    data.insert(at - 1, _audit.canonical_json(forged))
    write_lines(log, data)
    assert broken_at(log) == (at + 1, "audit-chain")


# --- failures of the writer ----------------------------------------------------------------------------

def test_a_torn_tail_is_reported_then_repaired_by_the_next_writer(log: Path, guideline: engine.Guideline,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    head = engine.verify_audit_log(log).head
    fragment = lines(log)[0][:57].encode()
    with open(log, "ab") as f:
        f.write(fragment)  # what a crash in the middle of a write could leave
    assert broken_at(log) == (7, "audit-torn")
    with caplog.at_level(logging.WARNING, logger="engine.audit"):
        guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(log))
    assert "torn" in caplog.text
    outcome = engine.verify_audit_log(log)
    assert outcome.valid and outcome.count == 8
    repair, evaluation = (json.loads(line) for line in lines(log)[6:])
    assert repair["event"] == "repair" and repair["prev"] == head
    assert repair["truncated_bytes"] == len(fragment) and repair["torn"] == _audit.sha256(fragment)
    assert evaluation["event"] == "evaluation" and evaluation["prev"] == repair["hash"]


def test_a_log_that_is_only_a_torn_fragment_is_repaired(tmp_path: Path, guideline: engine.Guideline) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b'{"codes":[')
    guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(path))
    records = [json.loads(line) for line in lines(path)]
    assert [r["event"] for r in records] == ["repair", "evaluation"]
    assert records[0]["prev"] == _audit.GENESIS
    assert engine.verify_audit_log(path).valid


def test_the_writer_refuses_to_chain_onto_an_altered_last_line(log: Path, guideline: engine.Guideline) -> None:
    data = lines(log)
    data[-1] = data[-1].replace('"seq":6', '"seq":60')
    write_lines(log, data)
    before = log.read_bytes()
    with pytest.raises(engine.AuditLogError, match="refusing to chain"):
        guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(log))
    assert log.read_bytes() == before


def test_no_result_when_the_audit_write_fails(tmp_path: Path, guideline: engine.Guideline) -> None:
    with pytest.raises(engine.AuditLogError, match="cannot open"):
        guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(tmp_path / "no-such-dir" / "a.log"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_no_result_when_the_disk_is_full(guideline: engine.Guideline) -> None:
    with pytest.raises(engine.AuditLogError, match="write failed|short write"):
        guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog("/dev/full"))


# --- concurrency -----------------------------------------------------------------------------------------

def _process_writer(path: str, count: int, barrier: Any) -> None:
    """Runs in a spawned process: load the guideline, wait for the others, append `count` evaluations."""
    guideline = engine.load()
    audit = engine.AuditLog(path)
    barrier.wait()
    for i in range(count):
        guideline.evaluate(PATIENTS[i % len(PATIENTS)], audit_log=audit)


def test_concurrent_threads_and_processes_never_fork_the_chain(tmp_path: Path,
                                                               guideline: engine.Guideline) -> None:
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4 + 1)
    processes = [ctx.Process(target=_process_writer, args=(str(path), 50, barrier)) for _ in range(4)]
    for p in processes:
        p.start()
    audit = engine.AuditLog(path)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def thread_writer(n: int) -> None:
        try:
            start.wait()
            for i in range(50):
                guideline.evaluate(PATIENTS[(n + i) % len(PATIENTS)], audit_log=audit)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_writer, args=(n,)) for n in range(8)]
    barrier.wait(timeout=120)  # every process has loaded the guideline: all 12 writers start together
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert not errors, errors
    outcome = engine.verify_audit_log(path)
    assert outcome.valid, outcome
    assert outcome.count == 600
    assert len(lines(path)) == 600


# --- crash safety --------------------------------------------------------------------------------------------

WRITER = """
import sys, engine
guideline = engine.load()
audit = engine.AuditLog(sys.argv[1])
patients = [{"anc": 0.3, "temperature": 38.6}, {"hemoglobin": 6.5}, {"anc": 0.8, "on_tki": True}]
i = 0
while True:
    guideline.evaluate(patients[i % 3], audit_log=audit)
    i += 1
"""


def _count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_writers_killed_at_random_moments_leave_a_log_that_verifies(tmp_path: Path,
                                                                   guideline: engine.Guideline) -> None:
    path = tmp_path / "audit.log"
    rng = random.Random(20240601)
    for _ in range(6):
        before = _count(path)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while _count(path) < before + 5 and time.monotonic() < deadline:  # it is appending
                time.sleep(0.005)
            assert proc.poll() is None, "the writer died on its own"
            time.sleep(rng.uniform(0, 0.05))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        outcome = engine.verify_audit_log(path)
        # A SIGKILL cannot tear a single small write() in practice, but if it ever did, only the
        # last line may be incomplete, and the next writer repairs it (checked below).
        assert outcome.valid or (outcome.code == "audit-torn" and outcome.line == outcome.count + 1), outcome
        assert outcome.count > before
    head = engine.verify_audit_log(path)
    guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(path))  # the chain continues
    outcome = engine.verify_audit_log(path)
    assert outcome.valid, outcome
    assert outcome.count >= head.count + 1
    assert json.loads(lines(path)[head.count])["prev"] == head.head


# --- command line ----------------------------------------------------------------------------------------------

def test_cli_evaluate_appends_and_verify_exit_codes(tmp_path: Path, fast_cli: None) -> None:
    path = tmp_path / "audit.log"
    example = str(REPO / "examples" / "febrile-neutropenia-low-risk.json")
    for n in range(1, 4):
        code, out, err = run_cli(["evaluate", example, "--audit-log", str(path), "--format", "json"])
        assert code == 0, err
        assert json.loads(out)["recommendations"]
        assert len(lines(path)) == n
    # anyone holding the JSON output can recompute the line's result digest
    assert json.loads(lines(path)[-1])["result"] == _audit.sha256(_audit.canonical_json(json.loads(out)))
    code, out, _ = run_cli(["audit", "verify", str(path)])
    assert code == 0 and "valid — 3 line(s)" in out
    data = lines(path)
    data[1] = data[1].replace("fn-oral-step-down", "fn-high-risk-inpatient")
    write_lines(path, data)
    code, out, err = run_cli(["audit", "verify", str(path)])
    assert code == 1
    assert out.startswith(f"{path}:2:1: audit-hash: ")
    assert "line 2" in err
    assert run_cli(["audit", "verify", str(tmp_path / "missing.log")])[0] == 2
    assert run_cli(["audit", "verify", str(tmp_path)])[0] == 2  # a directory
    assert run_cli(["audit"])[0] == 2  # usage: the subcommand is required


def test_cli_evaluate_prints_nothing_when_the_audit_write_fails(tmp_path: Path, fast_cli: None) -> None:
    example = str(REPO / "examples" / "febrile-neutropenia-low-risk.json")
    code, out, err = run_cli(["evaluate", example, "--audit-log", str(tmp_path / "no-dir" / "a.log")])
    assert code == 1
    assert out == ""
    assert "audit log" in err


def test_cli_real_commands(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    guideline_bin = Path(sys.executable).with_name("guideline")
    example = str(REPO / "examples" / "units.json")
    proc = subprocess.run([str(guideline_bin), "evaluate", example, "--audit-log", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "1 line(s)" in proc.stdout
