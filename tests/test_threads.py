"""One loaded Guideline, many threads: same answers as one thread, nothing shared between patients."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import engine
from engine.products.cases import load_cases


def test_concurrent_evaluations_match_sequential(guideline: engine.Guideline) -> None:
    cases, _ = load_cases(engine.BUNDLED_GUIDELINE, guideline)
    patients = [c.facts for c in cases] + [json.loads(p.read_text())
                                           for p in sorted(Path("examples").glob("*.json"))]
    assert len(patients) > 20
    expected = [guideline.evaluate(p).to_dict() for p in patients]
    work = patients * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: guideline.evaluate(p).to_dict(), work))
    assert results == expected * 8
