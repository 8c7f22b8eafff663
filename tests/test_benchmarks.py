"""Every benchmark script the README and docs name runs, at a tiny size, to its end: exit 0 and the
shape of its output. Not timings (the machine is shared); the agreement checks inside the scripts
(runtime.py's rows equal to the full results, snapshot.py's comparison) fail loudly on their own,
which is what these runs are for: a benchmark broken by an engine change fails here, not in a
month's measurement."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def script(name: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, f"benchmarks/{name} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_script_the_docs_name_is_run_here() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for doc in docs for m in re.findall(r"benchmarks/(\w+)\.py", doc.read_text(encoding="utf-8"))}
    runnable = {p.stem for p in BENCHMARKS.glob("*.py") if "__main__" in p.read_text(encoding="utf-8")}
    tested = set(re.findall(r'script\("(\w+)\.py"', Path(__file__).read_text(encoding="utf-8")))
    assert named & runnable <= tested, f"not run by this file: {sorted((named & runnable) - tested)}"


def test_runtime_measures_every_row_of_its_table() -> None:
    out = script("runtime.py", "--patients", "20", "--repeat", "1")
    assert "20 seeded random patients" in out
    rows = dict(re.findall(r"^\| ([A-Za-z_ ]+?) \| ([\d,.]+) \| [\d.]+ \|$", out, re.MULTILINE))
    assert {"floor", "full", "row", "row without missing", "C calls only"} <= set(rows), out
    assert all(float(v.replace(",", "")) >= 0 for v in rows.values())


def test_synth_writes_the_same_patients_as_ndjson_and_as_a_bulk_export(tmp_path: Path) -> None:
    script("synth.py", "5", str(tmp_path), "--seed", "3")
    flat = [json.loads(line) for line in (tmp_path / "patients.ndjson").read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in flat] == [f"p{i:07d}" for i in range(5)] and all(p["facts"] for p in flat)
    patients = (tmp_path / "bulk" / "Patient.ndjson").read_text(encoding="utf-8").splitlines()
    assert [json.loads(p)["id"] for p in patients] == [p["id"] for p in flat]
    observations = (tmp_path / "bulk" / "Observation.ndjson").read_text(encoding="utf-8").splitlines()
    assert observations and all(json.loads(o)["resourceType"] == "Observation" for o in observations)
    assert (tmp_path / "bulk-extra.ndjson").is_file()


def test_cohort_runs_the_command_and_measures_it(tmp_path: Path) -> None:
    out = script("cohort.py", "--patients", "40", "--skip", "w2", "cluster", "--out", str(tmp_path))
    got = json.loads(out)
    assert got["serial_patients_per_s"] > 0 and got["cores"] >= 1
    run = got["workers_1"]
    assert run["driver_mb"] > 0 and run["tree_mb"] >= run["driver_mb"]
    assert run["closing_line"].startswith("cohort: 40 patients, 40 evaluated, 0 invalid")


def test_bench_reports_load_latency_throughput_and_memory() -> None:
    out = script("bench.py", "--evaluations", "3", "--loads", "1", "--passes", "1")
    for words in ("YAML rules ->", "load (validate + compile + create ruleset): median",
                  "latency per patient: median", "throughput:", "memory (RSS) after N evaluations: 0:"):
        assert words in out, out
    assert "3: " in out.splitlines()[-1]  # the last sample is after the last evaluation


def test_snapshot_compares_equal_with_itself(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    script("snapshot.py", str(first), "--random", "3", "--fixed", "2")
    lines = [json.loads(line) for line in first.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5 and {"patient", "result", "rules_fired"} <= set(lines[0])
    assert "what_if" in lines[0] and "why_not" in lines[0] and "what_if" not in lines[-1]
    assert script("snapshot.py", str(second), "--random", "3", "--fixed", "2",
                  "--compare", str(first)).strip() == "identical: 5 patients"


def test_cds_load_gets_every_answer() -> None:
    out = script("cds_load.py", "--requests", "6", "--concurrency", "2")
    assert re.search(r"^6 requests in [\d.]+ s: .* \(status 200: 6\)$", out, re.MULTILINE), out


def test_seen_measures_both_indexes_on_the_same_ids() -> None:
    got = json.loads(script("seen.py", "--ids", "3000", "--kinds", "random"))
    assert got["random_dict"]["repeats"] == got["random_sqlite"]["repeats"] == 3
    assert {"cpu_s", "us_per_id", "rss_growth_mb"} <= set(got["random_sqlite"])
