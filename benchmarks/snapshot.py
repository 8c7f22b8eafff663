"""Every answer the engine gives on a fixed set of patients, one JSON line each, to prove a runtime
change leaves them identical.

Run: python benchmarks/snapshot.py OUT.jsonl [--random 1000] [--fixed N]   (then `cmp` two snapshots, or
--compare OLD.jsonl to name the first patient that differs). Patients: the examples, every case
of the bundled guideline and seeded random patients (benchmarks/patients.py). Per patient:
`Result.to_dict()` and `rules_fired`; for the examples and the cases also what-if and why-not
(every catalogue code) outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from patients import random_patients  # noqa: E402

import engine  # noqa: E402
from engine.products.cases import load_cases  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def lines(guideline: engine.Guideline, count: int, fixed: int | None = None) -> list[str]:
    cases, _ = load_cases(engine.BUNDLED_GUIDELINE, guideline)
    named = [(f"example {p.name}", json.loads(p.read_text())) for p in sorted((ROOT / "examples").glob("*.json"))]
    named += [(f"case {c.id}", c.facts) for c in cases]
    named = named[:fixed]  # None: all of them
    codes = list(guideline.content.catalogue)
    out = []
    for label, facts in named + [(f"random {i}", p) for i, p in enumerate(random_patients(guideline.content, count))]:
        result = guideline.evaluate(facts)
        line: dict[str, Any] = {"patient": label, "result": result.to_dict(), "rules_fired": sorted(result.rules_fired)}
        if not label.startswith("random"):
            line["what_if"] = guideline.evaluate(facts, what_if=True).to_dict()
            line["why_not"] = guideline.evaluate(facts, why_not=codes).to_dict()
        out.append(json.dumps(line, sort_keys=True, ensure_ascii=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--random", type=int, default=1000)
    parser.add_argument("--fixed", type=int, help="only the first N examples and cases (a quick check)")
    parser.add_argument("--compare", type=Path, help="a snapshot to compare with, line by line")
    args = parser.parse_args()
    got = lines(engine.load(), args.random, args.fixed)
    args.out.write_text("\n".join(got) + "\n", encoding="utf-8")
    if args.compare:
        old = args.compare.read_text(encoding="utf-8").splitlines()
        if len(old) != len(got):
            sys.exit(f"{len(old)} lines before, {len(got)} now")
        for before, now in zip(old, got, strict=True):
            if before != now:
                sys.exit(f"differs: {json.loads(now)['patient']}")
        print(f"identical: {len(got)} patients")


if __name__ == "__main__":
    main()
