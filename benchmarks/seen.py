"""Benchmark the cohort driver's index of NDJSON ids: the SQLite file (engine/cohort/seen.py) against
the dict it replaced, on the same ids, in batches as the driver gets them.

Run: python benchmarks/seen.py [--ids 1000000] [--batch 1000] [--kinds sequential random]
Each index runs in a fresh subprocess (peak RSS is a per-process high-water mark), on ids like the
synthetic cohort's (`p0000001`, in order) and on random UUIDs (an EHR's, no order: the worst case
for a B-tree bigger than its cache). One id in 1,000 repeats an earlier one, as a duplicate line.
Reported per index: CPU seconds spent in the index only (ids are made outside the timing),
microseconds per id, and how far peak RSS grew over the process's baseline. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def batches(n: int, size: int, kind: str) -> Iterator[tuple[list[str], list[str]]]:
    rnd = random.Random(7)
    made: list[str] = []  # only the repeats' sources, one in 1,000: small beside the index itself
    for start in range(0, n, size):
        ids, places = [], []
        for line in range(start + 1, min(start + size, n) + 1):
            if line % 1000 == 0 and made:
                pid = rnd.choice(made)
            else:
                pid = f"p{line:07d}" if kind == "sequential" else str(uuid.UUID(int=rnd.getrandbits(128)))
                if line % 1000 == 1:
                    made.append(pid)
            ids.append(pid)
            places.append(f"line {line}")
        yield ids, places


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(index: str, n: int, size: int, kind: str) -> dict[str, float]:
    from engine.cohort.seen import SeenIds

    base = peak_mb()
    spent = 0.0
    repeats = 0
    if index == "dict":
        seen: dict[str, str] = {}
        for ids, places in batches(n, size, kind):
            begin = time.process_time()
            for pid, where in zip(ids, places):  # the driver's loop before seen.py
                repeats += seen.setdefault(pid, where) != where
            spent += time.process_time() - begin
    else:
        with SeenIds() as index_:
            for ids, places in batches(n, size, kind):
                begin = time.process_time()
                repeats += sum(first is not None for first in index_.firsts(ids, places))
                spent += time.process_time() - begin
    return {"cpu_s": round(spent, 2), "us_per_id": round(spent / n * 1e6, 2),
            "rss_growth_mb": round(peak_mb() - base, 1), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--kinds", nargs="+", default=["sequential", "random"], choices=["sequential", "random"])
    parser.add_argument("--child", nargs=2, metavar=("INDEX", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.ids, args.batch, args.child[1])))
        return
    results: dict[str, object] = {"ids": args.ids, "batch": args.batch}
    for kind in args.kinds:
        for index in ("dict", "sqlite"):
            done = subprocess.run([sys.executable, __file__, "--ids", str(args.ids), "--batch", str(args.batch),
                                   "--child", index, kind], capture_output=True, text=True, check=True)
            results[f"{kind}_{index}"] = json.loads(done.stdout)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
