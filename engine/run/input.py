"""Patient input: names, types, units and plausible ranges, checked before anything runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine.errors import InputFactsError, InputProblem, did_you_mean
from engine.model.content import Content, FactSpec
from engine.model.units import convert
from engine.run.explain import show


def _number(name: str, spec: FactSpec, raw: Any, problems: list[InputProblem]) -> float | None:
    unit = spec.unit
    value = raw
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"value", "unit"})
        if extra or "value" not in raw or "unit" not in raw:
            problems.append(InputProblem(name, "a quantity is {\"value\": number, \"unit\": \"UCUM\"}"
                            + (f"; unexpected key(s) {', '.join(extra)}" if extra else "")))
            return None
        value, unit = raw["value"], raw["unit"]
        if not isinstance(unit, str):
            problems.append(InputProblem(name, f"unit must be text, not {type(unit).__name__}"))
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(InputProblem(name, f"expected a number, got {type(value).__name__} {value!r}"))
        return None
    if not math.isfinite(value):
        problems.append(InputProblem(name, f"{value!r} is not a number"))
        return None
    return canonical_quantity(name, spec, value, unit, problems)


def canonical_quantity(name: str, spec: FactSpec, value: float, unit: str | None,
                       problems: list[InputProblem]) -> float | None:
    """`value` in `unit` converted to the fact's canonical unit and range-checked; None (with the
    problem recorded under `name`) when the unit is not accepted or the value implausible."""
    conversion = spec.conversion(unit) if unit is not None else None
    if conversion is None:
        accepted = [spec.unit or "", *dict(spec.units)]
        problems.append(InputProblem(name, f"unit '{unit}' is not accepted{did_you_mean(str(unit), accepted)}; "
                        f"accepted units: {', '.join(accepted)}"))
        return None
    canonical = value if unit == spec.unit else convert(value, conversion)
    low, high = spec.range or (-math.inf, math.inf)
    if not low <= canonical <= high:
        given = f" ({show(value)} {unit})" if unit != spec.unit else ""
        problems.append(InputProblem(name, f"{show(canonical)} {spec.unit}{given} is outside the plausible range "
                        f"{show(low)}–{show(high)} {spec.unit}"))
        return None
    return canonical


def check_facts(content: Content, facts: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """(canonical facts, facts that were converted from another unit); raises InputFactsError.

    A null value means "not known" and is treated exactly like an absent fact.
    """
    if not isinstance(facts, Mapping):
        raise InputFactsError([InputProblem("", "patient facts must be a JSON object of fact names, not "
                                            f"{type(facts).__name__}")])
    problems: list[InputProblem] = []
    canonical: dict[str, Any] = {}
    converted: dict[str, float] = {}
    for name, raw in facts.items():
        spec = content.facts.get(name) if isinstance(name, str) else None
        if spec is None:
            if isinstance(name, str) and name in content.derived:
                problems.append(InputProblem(name, "is derived by the guideline, not an input fact"))
            else:
                problems.append(InputProblem(name, f"unknown fact{did_you_mean(str(name), content.facts)}"))
            continue
        if raw is None:
            continue
        if spec.type == "number":
            value = _number(name, spec, raw, problems)
            if value is not None:
                canonical[name] = value
                if isinstance(raw, dict) and raw.get("unit") != spec.unit:
                    converted[name] = value
        elif spec.type == "boolean":
            if isinstance(raw, bool):
                canonical[name] = raw
            else:
                problems.append(InputProblem(name, f"expected true or false, got {type(raw).__name__} {raw!r}"))
        elif isinstance(raw, str) and raw in spec.values:
            canonical[name] = raw
        else:
            problems.append(InputProblem(name, f"{raw!r} is not one of {', '.join(spec.values)}"
                            f"{did_you_mean(str(raw), spec.values)}"))
    if problems:
        raise InputFactsError(problems)
    return canonical, converted
