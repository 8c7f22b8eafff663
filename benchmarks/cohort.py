"""Benchmark `guideline cohort`: throughput on 1 and 2 local workers and on a 2-worker LocalCluster, and
end-to-end time and peak memory (driver and whole process tree) for a large NDJSON file and a Bulk
Data export.

Run: python benchmarks/cohort.py [--patients 5000] [--large 100000] [--bulk 20000] [--out DIR]
Patients come from benchmarks/synth.py (deterministic). Each run is the real command in a
subprocess; memory is sampled with psutil every 0.2 s. A serial in-process evaluation of the same
patients (one core, no Dask) is measured in the same run as the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import synth  # noqa: E402

GUIDELINE = [sys.executable, "-m", "engine"]


def measured(argv: list[str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of the driver and of the driver with all its workers."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    driver = psutil.Process(proc.pid)
    peak_driver = peak_tree = 0.0
    while proc.poll() is None:
        try:
            own = driver.memory_info().rss
            tree = own + sum(c.memory_info().rss for c in driver.children(recursive=True))
            peak_driver, peak_tree = max(peak_driver, own), max(peak_tree, tree)
        except psutil.Error:
            pass
        time.sleep(0.2)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err
    return {"seconds": round(time.perf_counter() - start, 1), "driver_mb": round(peak_driver / 2**20),
            "tree_mb": round(peak_tree / 2**20), "closing_line": err.strip().splitlines()[-1]}


def serial(path: Path, n: int) -> float:
    """Patients per second evaluated in this process on one core, parsing included (no Dask)."""
    import engine
    from engine.cohort import ndjson, work

    guideline = engine.load()
    with path.open("rb") as stream:
        lines = [line for _, line in zip(range(n), ndjson.lines(stream))]
    start = time.perf_counter()
    work.evaluate_batch(guideline, guideline.digest, work.NDJSON, lines, None)  # type: ignore[arg-type]
    return len(lines) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--large", type=int, default=0, help="patients of the large NDJSON run (0: skip)")
    parser.add_argument("--bulk", type=int, default=0, help="patients of the Bulk Data run (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/guideline-cohort-bench"))
    parser.add_argument("--skip", nargs="*", default=[], help="runs to skip: w1 w2 cluster")
    args = parser.parse_args()
    small = args.out / f"n{args.patients}"
    if not (small / "patients.ndjson").exists():
        synth.write(args.patients, small)
    results: dict[str, object] = {"cores": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()}
    flat = str(small / "patients.ndjson")
    results["serial_patients_per_s"] = round(serial(small / "patients.ndjson", 1000), 1)
    if "w1" not in args.skip:
        results["workers_1"] = measured([*GUIDELINE, "cohort", flat, "--workers", "1", "-o", os.devnull])
    if "w2" not in args.skip:
        results["workers_2"] = measured([*GUIDELINE, "cohort", flat, "--workers", "2", "-o", os.devnull])
    if "cluster" not in args.skip:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
            results["local_cluster_2"] = measured([*GUIDELINE, "cohort", flat, "--scheduler",
                                                   cluster.scheduler_address, "-o", os.devnull])
    if args.large:
        large = args.out / f"n{args.large}"
        if not (large / "patients.ndjson").exists():
            synth.write(args.large, large)
        results[f"ndjson_{args.large}"] = measured([*GUIDELINE, "cohort", str(large / "patients.ndjson"),
                                                    "-o", os.devnull])
    if args.bulk:
        export = args.out / f"n{args.bulk}"
        if not (export / "bulk").exists():
            synth.write(args.bulk, export)
        results[f"bulk_{args.bulk}"] = measured([*GUIDELINE, "cohort", str(export / "bulk"), "--facts",
                                                 str(export / "bulk-extra.ndjson"), "--as-of", "2026-06-01",
                                                 "-o", os.devnull])
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
