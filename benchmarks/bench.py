"""Benchmark: load time, evaluations per second, latency per patient, memory over 100,000 evaluations.

Run: python benchmarks/bench.py [--evaluations 100000] [--loads 5] [--passes 20]. Pinned to one core where the OS allows.
Patients: every clinical case of the bundled guideline plus the examples (a varied set: febrile
and afebrile, complete and sparse, with and without units).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import engine
from engine.products.cases import load_cases

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5, help="timed loads of the guideline")
    parser.add_argument("--passes", type=int, default=20, help="timed latency passes over the patients")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    loads = []
    for _ in range(max(args.loads, 1)):
        start = time.perf_counter()
        guideline = engine.load()
        loads.append(time.perf_counter() - start)
    cases, _ = load_cases(engine.BUNDLED_GUIDELINE, guideline)
    patients = [c.facts for c in cases] + [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    firings = guideline.program and len(guideline.program.definition)

    for p in patients:  # warm up
        guideline.evaluate(p)
    latencies = []
    for _ in range(max(args.passes, 1)):
        for p in patients:
            start = time.perf_counter()
            guideline.evaluate(p)
            latencies.append(time.perf_counter() - start)
    latencies.sort()

    memory = [(0, rss_mb())]
    start = time.perf_counter()
    for i in range(1, args.evaluations + 1):
        guideline.evaluate(patients[i % len(patients)])
        if i % max(args.evaluations // 5, 1) == 0:  # five samples (after each one when fewer)
            memory.append((i, rss_mb()))
    elapsed = time.perf_counter() - start

    print(f"guideline: {guideline.id} {guideline.version}, {len(guideline.content.rules)} YAML rules -> "
          f"{firings} durable_rules rules; {len(patients)} distinct patients")
    print(f"load (validate + compile + create ruleset): median {statistics.median(loads) * 1e3:.1f} ms, "
          f"max {max(loads) * 1e3:.1f} ms")
    print(f"latency per patient: median {statistics.median(latencies) * 1e3:.3f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.3f} ms, max {latencies[-1] * 1e3:.3f} ms "
          f"({len(latencies)} timed evaluations)")
    print(f"throughput: {args.evaluations / elapsed:,.0f} evaluations/s on one core "
          f"({args.evaluations:,} evaluations in {elapsed:.1f} s)")
    print("memory (RSS) after N evaluations: " + ", ".join(f"{n:,}: {mb:.1f} MB" for n, mb in memory))


if __name__ == "__main__":
    main()
