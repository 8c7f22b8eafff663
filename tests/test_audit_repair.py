"""The audit log's repairs are never silent, and a chain head kept elsewhere finds lines cut off the end.

A torn tail that is a whole record missing its newline is completed, not removed; any other torn
tail is removed with a `repair` line recording its length and sha256, and `verify` names every
repair. `verify(expect_head=...)` / `audit verify --expect-head` fail when no line has that hash.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

import engine
from engine import cli
from engine.errors import BadInputError
from engine.products import audit as _audit

PATIENTS = [{"anc": 0.3, "temperature": 38.6}, {"anc": 0.8, "on_tki": True, "temperature": 36.9},
            {"hemoglobin": 6.5}, {"anc": 1.2}]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def log(tmp_path: Path, guideline: engine.Guideline) -> Path:
    path = tmp_path / "audit.log"
    for patient in PATIENTS:
        guideline.evaluate(patient, audit_log=engine.AuditLog(path))
    return path


def cut(log: Path, n: int) -> bytes:
    """Cut the last `n` bytes off the log; the bytes left after the last newline."""
    data = log.read_bytes()
    os.truncate(log, len(data) - n)
    kept = data[:-n]
    return kept[kept.rfind(b"\n") + 1:]


def test_a_completed_line_that_lost_its_newline_is_completed_not_removed(log: Path,
                                                                          guideline: engine.Guideline) -> None:
    before = log.read_bytes().splitlines()
    cut(log, 1)
    assert engine.verify_audit_log(log).code == "audit-torn"
    guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(log))
    after = log.read_bytes().splitlines()
    assert after[:4] == before and json.loads(after[4])["prev"] == json.loads(before[3])["hash"]
    outcome = engine.verify_audit_log(log)
    assert outcome.valid and outcome.count == 5 and outcome.repairs == ()


def test_a_completed_line_cut_short_is_removed_with_a_record_and_named_by_verify(
        log: Path, guideline: engine.Guideline) -> None:
    fragment = cut(log, 10)
    guideline.evaluate(PATIENTS[0], audit_log=engine.AuditLog(log))
    repair = json.loads(log.read_bytes().splitlines()[3])
    assert repair["event"] == "repair"
    assert repair["truncated_bytes"] == len(fragment) and repair["torn"] == _audit.sha256(fragment)
    outcome = engine.verify_audit_log(log)
    assert outcome.valid and outcome.repairs == (_audit.Repair(4, len(fragment), _audit.sha256(fragment)),)
    code, out, _ = run_cli(["audit", "verify", str(log)])
    assert code == 0
    assert out.splitlines()[0] == (f"{log}:4:1: audit-repair: a writer removed a torn last line of {len(fragment)} "
                                   f"byte(s) ({_audit.sha256(fragment)}) here: an interrupted write, or a "
                                   "completed line cut short; the lines before it verify")
    assert "valid — 5 line(s)" in out.splitlines()[1]


def test_a_chain_head_kept_elsewhere_finds_whole_lines_cut_off_the_end(log: Path) -> None:
    head = engine.verify_audit_log(log).head
    third = json.loads(log.read_bytes().splitlines()[2])["hash"]
    assert engine.verify_audit_log(log, expect_head=head).head_line == 4
    assert engine.verify_audit_log(log, expect_head=third.removeprefix("sha256:").upper()).head_line == 3
    data = log.read_bytes()
    log.write_bytes(data[:data.rstrip(b"\n").rfind(b"\n") + 1])  # the last line removed, whole
    assert engine.verify_audit_log(log).valid  # the chain alone cannot tell
    outcome = engine.verify_audit_log(log, expect_head=head)
    assert not outcome.valid and (outcome.line, outcome.code, outcome.count) == (4, "audit-head", 3)
    assert head in outcome.reason and "cut off the end" in outcome.reason
    code, out, err = run_cli(["audit", "verify", str(log), "--expect-head", head])
    assert code == 1 and f"{log}:4:1: audit-head: " in out and "line 4" in err
    code, out, _ = run_cli(["audit", "verify", str(log), "--expect-head", third])
    assert code == 0 and "the expected chain head is line 3" in out


@pytest.mark.parametrize("head", ["", "sha256:abc", "md5:" + "0" * 64, "0" * 63 + "g"])
def test_a_malformed_expected_head_is_bad_input(log: Path, head: str) -> None:
    with pytest.raises(BadInputError, match="is not a chain head"):
        engine.verify_audit_log(log, expect_head=head)
    assert run_cli(["audit", "verify", str(log), "--expect-head", head])[0] == 2


def test_a_line_over_1_mib_has_its_own_code(log: Path) -> None:
    with open(log, "ab") as f:
        f.write(b'{"x":"' + b"a" * (1 << 20) + b'"}\n')
    outcome = engine.verify_audit_log(log)
    assert (outcome.line, outcome.code) == (5, "audit-too-long") and "1 MiB" in outcome.reason
    assert "torn" not in outcome.reason


def test_a_short_torn_tail_is_still_audit_torn(log: Path) -> None:
    with open(log, "ab") as f:
        f.write(b'{"codes":[')
    assert engine.verify_audit_log(log).code == "audit-torn"


def test_verify_refuses_a_fifo_without_waiting_and_a_device(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):  # a FIFO blocked open(); /dev/zero read as an empty, valid log
        with pytest.raises(BadInputError, match="not a regular file"):
            engine.verify_audit_log(path)
        assert run_cli(["audit", "verify", str(path)])[0] == 2

