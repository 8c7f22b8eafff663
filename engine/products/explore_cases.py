"""Case expectations on why-not and what-if (cases/*.yaml `expect.why_not`, `expect.what_if`).

`why_not: {code: status}` checks the engine's answer for each code; `what_if: {fact: [{value,
adds?, removes?}]}` checks that the scenario for that value exists and, where given, that the
codes it adds and removes are exactly these (in any order).
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import Problem, did_you_mean
from engine.guideline import Guideline
from engine.model.content import Content
from engine.model.source import Document
from engine.run.result import Result, WhatIfEntry


def explore_problems(doc: Document, i: int, expect: dict[str, Any], content: Content) -> list[Problem]:
    """Unknown codes and facts in these expectations, located (a typo would pass vacuously)."""
    problems = []

    def code(value: str, *path: str | int) -> None:
        if value not in content.catalogue:
            problems.append(doc.problem(("cases", i, "expect", *path), "unknown-code",
                                        f"unknown recommendation code '{value}'{did_you_mean(value, content.catalogue)}"))

    for name in expect.get("why_not", {}):
        code(name, "why_not", name, "$key")
    for fact, scenarios in expect.get("what_if", {}).items():
        if fact not in content.facts:
            problems.append(doc.problem(("cases", i, "expect", "what_if", fact, "$key"), "unknown-fact",
                                        f"unknown input fact '{fact}'{did_you_mean(fact, content.facts)}"))
        for j, scenario in enumerate(scenarios):
            for key in ("adds", "removes"):
                for k, value in enumerate(scenario.get(key, [])):
                    code(value, "what_if", fact, j, key, k)
    return problems


def _same_value(expected: Any, actual: Any) -> bool:
    numbers = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expected, actual)]
    if all(numbers):
        return math.isclose(expected, actual, rel_tol=0, abs_tol=1e-9)
    return type(expected) is type(actual) and expected == actual


def _what_if_failures(fact: str, expected: list[dict[str, Any]], entry: WhatIfEntry | None) -> list[str]:
    if entry is None:
        return [f"what-if {fact}: not a missing fact for this patient, so no scenario was tried"]
    failures = []
    for want in expected:
        scenario = next((s for s in entry.scenarios if _same_value(want["value"], s.value)), None)
        if scenario is None:
            tried = ", ".join(repr(s.value) for s in entry.scenarios) or "none"
            failures.append(f"what-if {fact} = {want['value']!r}: no such scenario (values tried: {tried})")
            continue
        for key in ("adds", "removes"):
            got = list(getattr(scenario, key))
            if key in want and sorted(want[key]) != sorted(got):
                failures.append(f"what-if {fact} = {want['value']!r} {key}: expected [{', '.join(sorted(want[key]))}], "
                                f"got [{', '.join(sorted(got))}]")
    return failures


def explore_failures(guideline: Guideline, facts: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """The unmet why-not / what-if expectations of one case ([] when it has none: nothing is run)."""
    why_not, what_if = expect.get("why_not", {}), expect.get("what_if", {})
    if not why_not and not what_if:
        return []
    result: Result = guideline.evaluate(facts, what_if=bool(what_if), why_not=list(why_not))
    failures = []
    for entry in result.why_not or ():
        if entry.status != why_not[entry.code]:
            failures.append(f"why-not {entry.code}: expected {why_not[entry.code]}, got {entry.status} "
                            f"({'; '.join(entry.because)})")
    entries = {e.fact: e for e in result.what_if or ()}
    for fact, expected in what_if.items():
        failures += _what_if_failures(fact, expected, entries.get(fact))
    return failures
