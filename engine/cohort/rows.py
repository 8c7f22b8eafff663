"""One cohort row per patient (contract section 10): an evaluated result or an invalid input, as JSON.

`result_row` is the one place that maps an evaluation to a row. Rows come from the lean
evaluation (`Guideline.evaluate_row`, engine/run/row.py), whose codes, derived facts,
applicability and ranked missing facts equal the full result's (tests/test_runtime.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.errors import InputFactsError, RuleEngineError
from engine.guideline import Guideline
from engine.run.row import Row

EVALUATED, INVALID = "evaluated", "invalid"


def guideline_key(guideline: Guideline) -> dict[str, str]:
    """The guideline a row was evaluated on: on every row, so a row is never read against another version."""
    return {"id": guideline.id, "version": guideline.version, "digest": guideline.digest}


def result_row(patient_id: str, guideline: dict[str, str], row: Row) -> dict[str, Any]:
    """The row of an evaluated patient: applicability, codes, derived facts and the names of the
    missing facts, the most important first (the lean evaluation: no explanation is worded)."""
    evaluated = row.to_dict()
    # Without the missing facts (`--no-missing`): null, "not computed", never [] ("nothing is missing").
    out = {"id": patient_id, "status": EVALUATED, "guideline": guideline,
           "applicability": evaluated["applicability"], "codes": evaluated["codes"],
           "derived": evaluated["derived"], "missing": evaluated.get("missing"), "problems": []}
    if row.notes:  # e.g. "no facts were given": said, as `evaluate` says it, never silent
        out["notes"] = list(row.notes)
    return out


def invalid_row(patient_id: str | None, guideline: dict[str, str], problems: Iterable[str]) -> dict[str, Any]:
    """The row of an input that could not be evaluated: nothing recommended, every problem named."""
    return {"id": patient_id, "status": INVALID, "guideline": guideline, "applicability": None, "codes": [],
            "derived": {}, "missing": [], "problems": list(problems)}


def evaluate_row(guideline: Guideline, key: dict[str, str], patient_id: str, facts: Any,
                 where: str, missing: bool = True) -> dict[str, Any]:
    """One patient evaluated into its row (`missing` False: without the missing facts, on the ruleset
    without the rules that only record them); a rejected input or a void evaluation becomes an
    invalid row located at `where` (its line), never an exception that would stop the run."""
    try:
        return result_row(patient_id, key, guideline.evaluate_row(facts, missing=missing))
    except InputFactsError as exc:
        return invalid_row(patient_id, key, [f"{where}: {line}" for line in exc.lines()])
    except RuleEngineError as exc:  # that evaluation is void; the next patient gets a fresh one
        return invalid_row(patient_id, key, [f"{where}: the evaluation failed: {exc}"])
