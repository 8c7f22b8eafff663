"""Per-patient evaluation time beside a hand-written floor, in one run, on the same patients.

Run: python benchmarks/runtime.py [--patients 1000] [--repeat 7] [--old DIR]
Measures, per patient (median over --repeat passes over the same patients, passes interleaved so
every measure sees the same machine load):
- floor: benchmarks/handwritten.py, the same decisions written by hand as plain if/else, from the
  same facts (units converted by hand; no validation, which the engine does); ratios are to it;
- decisions only: the same floor given facts already in canonical units;
- full: `Guideline.evaluate` (explanations, missing, everything);
- row: `Guideline.evaluate_row` (codes, derived, applicability, missing names);
- row without missing: `Guideline.evaluate_row(missing=False)`;
- durable_rules C calls only: each patient's C calls replayed without Python actions (replay.py);
- before: with --old DIR (a checkout of the engine to compare with, e.g.
  `git archive <commit> | tar -x -C DIR`), full, row and row without missing of that checkout,
  whose full results must hash equal to this checkout's (a checkout without `evaluate_row` is
  timed on full only).
Full, row and row without missing (this checkout's and the old one's) run each checkout in a child
process of its own, driven pass by pass; the floor and the C calls run in this process.
Before timing, it checks that the floor and the rows agree with the full results on every patient.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from handwritten import canonical as by_hand  # noqa: E402
from handwritten import decide, floor  # noqa: E402
from patients import random_patients  # noqa: E402
from replay import record, replay  # noqa: E402

import engine  # noqa: E402
from engine.run.input import check_facts  # noqa: E402


def _pass(call: Callable[[Any], object], patients: list[Any]) -> float:
    """CPU microseconds per patient for one pass (CPU time: the machine is shared, and waiting for
    a core is not the engine's cost; everything here runs in one thread)."""
    start = time.process_time()
    for p in patients:
        call(p)
    return (time.process_time() - start) / len(patients) * 1e6


def _digest(guideline: Any, patients: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in patients:
        result = guideline.evaluate(p)
        h.update(json.dumps([result.to_dict(), sorted(result.rules_fired)], sort_keys=True).encode())
    return h.hexdigest()


def _measures(guideline: Any) -> dict[str, Callable[[Any], object]]:
    measures: dict[str, Callable[[Any], object]] = {"full": guideline.evaluate}
    if hasattr(guideline, "evaluate_row"):
        measures["row"] = guideline.evaluate_row
        measures["row without missing"] = lambda p: guideline.evaluate_row(p, missing=False)
    return measures


def serve(count: int) -> None:
    """A child process: one checkout's engine (first on PYTHONPATH), one pass per request (a
    measure's name; an empty answer when it has no such measure)."""
    guideline = engine.load()
    patients = random_patients(guideline.content, count)
    measures = _measures(guideline)
    for call in measures.values():
        _pass(call, patients[:50])
    print(_digest(guideline, patients), flush=True)
    for line in sys.stdin:
        call = measures.get(line.strip())
        print(_pass(call, patients) if call else "", flush=True)


class _Child:
    """A checkout's engine in a child process, driven pass by pass."""

    def __init__(self, root: Path, count: int):
        self.root = root.resolve()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", "--patients", str(count)],
                                        cwd=self.root, env={**os.environ, "PYTHONPATH": str(self.root)},
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.digest = self._answer("")

    def _answer(self, request: str | None) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if request:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def time(self, measure: str) -> float | None:
        answer = self._answer(measure)
        return float(answer) if answer else None

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def check_agreement(guideline: engine.Guideline, patients: list[dict[str, Any]],
                    canonical: list[dict[str, Any]]) -> None:
    derived_names = set(guideline.content.derived)
    for facts, canon in zip(patients, canonical, strict=True):
        full = guideline.evaluate(facts)
        codes, derived, status = floor(facts)
        if by_hand(facts) != canon or decide(canon) != (codes, derived, status):
            sys.exit(f"the hand-written unit conversion disagrees with the engine's on {facts}")
        want = {k: v for k, v in full.derived.items() if k in derived_names}
        if sorted(codes) != sorted(full.codes) or derived != want or status != full.applicability.status:
            sys.exit(f"the hand-written floor disagrees with the engine on {facts}")
        row = guideline.evaluate_row(facts)
        if (list(row.codes), row.derived, row.applicability, list(row.missing or ())) != \
                (full.codes, full.derived, full.applicability, [m.fact for m in full.missing]):
            sys.exit(f"evaluate_row disagrees with evaluate on {facts}")
        lean = guideline.evaluate_row(facts, missing=False)
        if (lean.codes, lean.derived, lean.applicability) != (row.codes, row.derived, row.applicability):
            sys.exit(f"evaluate_row(missing=False) disagrees with evaluate on {facts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--old", type=Path, help="a checkout of the engine to time beside this one ('… before')")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.patients)
        return

    load_before = os.getloadavg()
    guideline = engine.load()
    patients = random_patients(guideline.content, args.patients)
    canonical = [check_facts(guideline.content, p)[0] for p in patients]
    check_agreement(guideline, patients, canonical)

    # Each checkout's evaluations run in a child process of their own, the same way: timed in this
    # process, after the agreement checks and beside the C-call replays, the same code measured up
    # to 20 % slower than in a fresh process, which would bias any comparison.
    now = _Child(HERE.parent, args.patients)
    old = _Child(args.old, args.patients) if args.old else None
    for child in (now, old):
        if child is not None and not child.digest:
            sys.exit(f"the engine of {child.root} did not start (its error is above)")
        if child is not None and child.digest != _digest(guideline, patients):
            sys.exit(f"the results of {child.root} differ from this checkout's on these patients")

    measures = _measures(guideline)
    scripts = [record(guideline, p) for p in patients]
    times: dict[str, list[float]] = {"floor": [], "decisions only": [], "C calls only": [],
                                     **{name: [] for name in measures},
                                     **{f"{name} before": [] for name in measures}}
    for _ in range(args.repeat):
        times["floor"].append(_pass(floor, patients))
        times["decisions only"].append(_pass(decide, canonical))
        times["C calls only"].append(_pass(lambda script: replay(guideline, script), scripts))
        for name in measures:
            for child, label in ((old, f"{name} before"), (now, name)):
                answer = child.time(name) if child is not None else None
                if answer is not None:
                    times[label].append(answer)
    for child in (now, old):
        if child is not None:
            child.close()

    base = statistics.median(times["floor"])
    print(f"{args.patients} seeded random patients (benchmarks/patients.py), {args.repeat} passes, medians; "
          f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores, shared with other work)")
    print("| measure | CPU µs per patient | × floor |")
    print("|---|---|---|")
    for name in ("floor", "decisions only", "C calls only", *(m for name in measures for m in (f"{name} before", name))):
        if times[name]:
            median = statistics.median(times[name])
            print(f"| {name} | {median:,.0f} | {median / base:.1f} |")
    for name in measures:
        if times[f"{name} before"]:
            print(f"speed-up of {name}: "
                  f"{statistics.median(times[f'{name} before']) / statistics.median(times[name]):.2f}×")


if __name__ == "__main__":
    main()
