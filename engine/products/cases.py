"""Clinical test cases stored beside a guideline (cases/*.yaml): loading, running, coverage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputFactsError, Problem, did_you_mean
from engine.guideline import Guideline
from engine.loader import schema as _schema
from engine.loader.folder import display_name
from engine.loader.yamlio import read_yaml
from engine.model.source import Document
from engine.products.explore_cases import explore_failures, explore_problems
from engine.run.result import Result


@dataclass(frozen=True)
class Case:
    name: str
    facts: dict[str, Any]
    expect: dict[str, Any]
    file: str
    line: int

    @property
    def id(self) -> str:
        """A stable id for pytest: file stem and case name."""
        return f"{Path(self.file).stem}: {self.name}"


@dataclass
class CaseOutcome:
    case: Case
    failures: list[str] = field(default_factory=list)
    rules_fired: frozenset[str] = frozenset()

    @property
    def passed(self) -> bool:
        return not self.failures


def load_cases(folder: Path, guideline: Guideline) -> tuple[list[Case], list[Problem]]:
    """Every case of `folder/cases/*.yaml`, with located problems for malformed ones."""
    cases, problems = [], []
    for path in sorted((folder / "cases").glob("*.yaml")):
        doc, parse_problems = read_yaml(path, display_name(folder, path))
        problems += parse_problems
        if parse_problems:
            continue
        schema_problems = _schema.check(doc, "cases")
        problems += schema_problems
        if schema_problems:
            continue
        for i, raw in enumerate(doc.data["cases"]):
            problems += _check_case(doc, i, raw, guideline)
            line, _ = doc.where(("cases", i))
            cases.append(Case(raw["name"], raw["facts"], raw["expect"], doc.file, line))
    names: dict[str, int] = {}
    for case in cases:
        names[case.id] = names.get(case.id, 0) + 1
    problems += [Problem(c.file, c.line, 1, "duplicate-id", f"case name '{c.name}' is used twice")
                 for c in cases if names[c.id] > 1]
    return cases, problems


def _check_case(doc: Document, i: int, raw: dict[str, Any], guideline: Guideline) -> list[Problem]:
    """Expectations must name real codes and facts, or a typo would make a case pass vacuously."""
    content = guideline.content
    problems = []
    for key in ("fires", "does_not_fire", "fires_exactly"):
        for j, code in enumerate(raw["expect"].get(key, [])):
            if code not in content.catalogue:
                hint = did_you_mean(code, content.catalogue)
                problems.append(doc.problem(("cases", i, "expect", key, j), "unknown-code",
                                            f"unknown recommendation code '{code}'{hint}"))
    for name in raw["expect"].get("derived", {}):
        if name not in content.derived and name not in content.facts:
            problems.append(doc.problem(("cases", i, "expect", "derived", name, "$key"), "unknown-fact",
                                        f"unknown derived fact '{name}'{did_you_mean(name, content.derived)}"))
    for key in ("missing", "not_missing", "missing_first"):
        for j, name in enumerate(raw["expect"].get(key, [])):
            if name not in content.facts:
                problems.append(doc.problem(("cases", i, "expect", key, j), "unknown-fact",
                                            f"unknown input fact '{name}'{did_you_mean(name, content.facts)}"))
    if raw["expect"].get("applicability", "applies") != "applies" and content.population is None:
        problems.append(doc.problem(("cases", i, "expect", "applicability"), "no-population",
                                    "the guideline declares no population (guideline.yaml `population`), "
                                    "so it applies to every patient"))
    problems += explore_problems(doc, i, raw["expect"], content)
    try:
        guideline.evaluate(raw["facts"])
    except InputFactsError as exc:
        problems += [doc.problem(("cases", i, "facts"), "bad-input", str(p)) for p in exc.problems]
    return problems


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) \
            and not isinstance(expected, bool) and not isinstance(actual, bool):
        return math.isclose(expected, actual, rel_tol=0, abs_tol=1e-9)
    return type(expected) is type(actual) and expected == actual if expected is not None else actual is None


def run_case(guideline: Guideline, case: Case) -> CaseOutcome:
    """Evaluate one case; each unmet expectation becomes a readable expected-vs-actual line."""
    result = guideline.evaluate(case.facts)
    failures = expectation_failures(case, result) + explore_failures(guideline, case.facts, case.expect)
    return CaseOutcome(case, failures, result.rules_fired)


def expectation_failures(case: Case, result: Result) -> list[str]:
    """Each expectation of `case` that `result` does not meet, in words (mutation testing reuses
    this with results of mutated content)."""
    codes = result.codes
    missing = [m.fact for m in result.missing]
    exp = case.expect
    failures = []
    for code in exp.get("fires", []):
        if code not in codes:
            failures.append(f"expected {code} to fire; it did not (fired: {', '.join(codes) or 'nothing'})")
    for code in exp.get("does_not_fire", []):
        if code in codes:
            rec = next(r for r in result.recommendations if r.code == code)
            failures.append(f"expected {code} NOT to fire; it fired because: {rec.because[0]}")
    if "fires_exactly" in exp and set(exp["fires_exactly"]) != set(codes):
        extra = sorted(set(codes) - set(exp["fires_exactly"]))
        lacking = sorted(set(exp["fires_exactly"]) - set(codes))
        failures.append("fired codes differ: " + "; ".join(
            part for part in (f"unexpected: {', '.join(extra)}" if extra else "",
                              f"not fired: {', '.join(lacking)}" if lacking else "") if part))
    for name, want in exp.get("derived", {}).items():
        got = result.derived.get(name)
        if not _same(want, got):
            failures.append(f"derived {name}: expected {want!r}, got {got!r}")
    for name in exp.get("missing", []):
        if name not in missing:
            failures.append(f"expected '{name}' in missing; missing is [{', '.join(missing)}]")
    for name in exp.get("not_missing", []):
        if name in missing:
            failures.append(f"expected '{name}' not to be missing; it is")
    if "applicability" in exp and exp["applicability"] != result.applicability.status:
        a = result.applicability
        failures.append(f"expected applicability {exp['applicability']}; it is {a.status} "
                        f"({a.population}: {'; '.join(a.because) or 'no reason given'})")
    first = exp.get("missing_first")
    if first is not None and missing[:len(first)] != first:
        failures.append(f"expected missing to start with [{', '.join(first)}]; "
                        f"it starts with [{', '.join(missing[:len(first) + 2])}]")
    return failures


def all_rule_ids(guideline: Guideline) -> list[str]:
    """Every rule (and score) that coverage counts."""
    return sorted([r.id for r in guideline.content.rules] + [s.rule_id for s in guideline.content.scores])
