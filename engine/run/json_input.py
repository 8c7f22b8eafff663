"""Strict JSON for patient input: a key given twice is an error, not a silent overwrite."""

from __future__ import annotations

from typing import Any

from engine.errors import InputFactsError, InputProblem


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads. JSON allows a key twice and keeps the last: for a
    patient that hides a value (an ANC of 0.3 overridden by 2.0), so it is an input error."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputFactsError([InputProblem(key, "given twice in the same JSON object")])
        seen[key] = value
    return seen
