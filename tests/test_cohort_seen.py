"""The cohort driver's index of NDJSON ids (engine/cohort/seen.py): a later line with an id already
given is the invalid one and names the first, across batches and inside one; the index lives in a
temporary file removed after the run (also a failed one) and its memory does not grow with the ids."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import cli
from engine.cohort import command
from engine.cohort.output import TextRows
from engine.cohort.seen import IdIndexError, SeenIds

ROOT = Path(__file__).resolve().parent.parent


def test_a_repeated_id_names_its_first_place_across_batches_and_inside_one(tmp_path: Path) -> None:
    with SeenIds(tmp_path) as seen:
        assert seen.firsts(["a", "b", "a", None, "a"], ["line 1", "line 2", "line 3", "line 4", "line 5"]) == \
            [None, None, "line 1", None, "line 1"]
        assert seen.firsts(["c", "b", "a", "c", None], ["line 6", "line 7", "line 8", "line 9", "line 10"]) == \
            [None, "line 2", "line 1", "line 6", None]
        assert seen.firsts(["a", "c"], ["line 11", "line 12"]) == ["line 1", "line 6"]  # a third time and more
        assert seen.firsts([None, None], ["line 13", "line 14"]) == [None, None]


def test_ids_are_compared_exactly_as_given(tmp_path: Path) -> None:
    odd = ['say "hi"', "it's", "Zoë", "zoe", "ZOË", "Zoe\u0308", "患者-1", "🩸", "a\x00b", "a", "\ud800",
           "x" * 100_000, "x" * 99_999, "'); DROP TABLE seen; --", " a", "a "]
    with SeenIds(tmp_path, cache_kib=64) as seen:
        assert seen.firsts(odd, [f"line {n}" for n in range(len(odd))]) == [None] * len(odd)
        again = list(reversed(odd))
        assert seen.firsts(again, ["later"] * len(odd)) == [f"line {odd.index(i)}" for i in again]


def test_more_ids_than_one_statement_takes(tmp_path: Path) -> None:
    ids = [f"id-{n % 1500}" for n in range(3000)]  # 1,500 new then the same 1,500 again, in one batch
    with SeenIds(tmp_path) as seen:
        got = seen.firsts(ids, [f"line {n}" for n in range(3000)])
        assert got == [None] * 1500 + [f"line {n}" for n in range(1500)]
        assert seen.firsts(ids[:1200], ["later"] * 1200) == [f"line {n}" for n in range(1200)]


def test_the_index_is_created_on_the_first_id_and_removed_on_close(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path)
    assert seen.firsts([None], ["p"]) == [None] and list(tmp_path.iterdir()) == []  # no id, no file
    seen.firsts(["a"], ["line 1"])
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("guideline-cohort-ids-") and (folder / "seen.sqlite").is_file()
    seen.close()
    seen.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_a_named_error(tmp_path: Path) -> None:
    with SeenIds(tmp_path / "missing") as seen, pytest.raises(IdIndexError, match="cannot create the index") as info:
        seen.firsts(["a"], ["line 1"])
    assert info.value.exit_code == 1 and info.value.report()[0].startswith("error: ")


def _rss_growth(ids: int, index: str) -> float:
    """MB the resident memory of a fresh process grows by while `index` holds `ids` ids (with a small
    cache, full well before the smaller count). Resident now, not the peak: importing the engine
    peaks higher than what either index holds, and that high-water mark would hide any growth."""
    script = f"""
import resource
from engine.cohort.seen import SeenIds
def rss(): return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
base = rss()
if {index!r} == "dict":
    seen = {{}}
    for n in range({ids}):
        seen.setdefault(f"patient-{{n:09d}}", f"line {{n}}")
    print(rss() - base)
else:
    with SeenIds(cache_kib=512) as index:
        for start in range(0, {ids}, 1000):
            numbers = range(start, min(start + 1000, {ids}))
            index.firsts([f"patient-{{n:09d}}" for n in numbers], [f"line {{n}}" for n in numbers])
        print(rss() - base)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="resident memory is read from Linux's /proc")
def test_the_index_memory_does_not_grow_with_the_number_of_ids() -> None:
    grown = _rss_growth(200_000, "sqlite") - _rss_growth(50_000, "sqlite")
    assert grown < 3.0, f"{grown:.1f} MB more for 150,000 more ids"
    # The dict it replaced, measured the same way, grows by ~25 MB: the measure can see growth.
    assert _rss_growth(200_000, "dict") - _rss_growth(50_000, "dict") > 10.0


# --- in the command -----------------------------------------------------------------------------------

LINES = ['{"id": "a", "facts": {"anc": 0.3}}', '{"id": "b", "facts": {}}', '{"id": "a", "facts": {}}',
         '{"id": "c", "facts": {"anc": 2.0}}', '{"id": "c", "facts": {}}', '{"id": "a", "facts": {}}',
         '{"id": "d", "facts": {}}', '{"id": "b", "facts": {}}']


def _cohort(guideline: engine.Guideline, source: Path, scheduler: str, out: Any, batch: int = 2) -> command.Run:
    options = command.Options(source=str(source), scheduler=scheduler, batch=batch)
    rows = out if hasattr(out, "abort") else TextRows(out)  # a text stream: NDJSON onto it
    return command.run(guideline, options, rows, io.StringIO(), io.StringIO())


def test_the_command_names_the_first_line_of_a_repeated_id(tmp_path: Path, scheduler: str,
                                                           guideline: engine.Guideline,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    outputs = []
    for batch in (2, 3, 1000):  # repeats across batches (2: every one) and inside one (3: 1 and 3, 4 and 5)
        out = io.StringIO()
        done = _cohort(guideline, source, scheduler, out, batch)
        outputs.append(out.getvalue())
        assert list((tmp_path / "tmp").iterdir()) == []  # the index's folder went with the run
    assert outputs[0] == outputs[1] == outputs[2]
    rows = [json.loads(line) for line in outputs[0].splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "a", "c", "c", "a", "d", "b"]
    firsts = {3: 1, 5: 4, 6: 1, 8: 2}
    for number, row in enumerate(rows, 1):
        if number in firsts:
            assert row["status"] == "invalid" and row["problems"] == [
                f"line {number}: id '{row['id']}' was already given at line {firsts[number]}; one line per patient"]
        else:
            assert row["status"] == "evaluated", row
    assert (done.summary.patients, done.summary.invalid) == (8, 4)


class _Failing(io.StringIO):
    def write(self, text: str) -> int:
        if self.tell() > 0:
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_a_failed_run_removes_the_index_too(tmp_path: Path, scheduler: str, guideline: engine.Guideline,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []
    real = SeenIds._open

    def recording(self: SeenIds) -> Any:
        db = real(self)
        made.append(next((tmp_path / "tmp").iterdir()))
        return db

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(SeenIds, "_open", recording)
    (tmp_path / "tmp").mkdir()
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    with pytest.raises(OSError, match="No space left"):
        _cohort(guideline, source, scheduler, _Failing())
    assert made and not made[0].exists() and list((tmp_path / "tmp").iterdir()) == []


def test_no_room_for_the_index_ends_the_run_with_its_reason(tmp_path: Path, scheduler: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["cohort", str(source), "--scheduler", scheduler], out=out, err=err, stdin=io.StringIO())
    assert code == 1 and "Traceback" not in err.getvalue()
    assert f"error: cannot create the index of ids given so far in {tmp_path / 'gone'}" in err.getvalue()
