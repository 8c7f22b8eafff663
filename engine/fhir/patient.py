"""A Patient becomes facts: birthDate -> the age in completed years at the as-of date."""

from __future__ import annotations

from datetime import date
from typing import Any

from engine.errors import InputProblem
from engine.fhir.dates import interval
from engine.fhir.mapping import CodeIndex
from engine.fhir.resources import Resource
from engine.run.explain import show


def _age(birth: Any, on: date) -> tuple[int, int] | None:
    """(youngest, oldest) completed years on a date for a FHIR birthDate (possibly year or year-month)."""
    span = interval(birth)
    if span is None:
        return None
    first, last = span[0].date(), span[1].date()

    def years(born: date) -> int:
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))

    return years(last), years(first)


def patient_facts(resources: list[Resource], index: CodeIndex, as_of: date, facts: dict[str, Any],
                  sources: dict[str, list[str]], notes: list[str], problems: list[InputProblem]) -> None:
    """Set the facts the Patient gives (and where each came from); more than one Patient is refused."""
    patients = [r for r in resources if r.type == "Patient"]
    if len(patients) > 1:
        problems.append(InputProblem("", f"{len(patients)} Patient resources ({', '.join(p.label for p in patients)}): "
                                     "the input must be about one patient"))
        return
    for res in patients:
        for spec in index.patient.get("birthDate", ()):
            birth = res.model.birthDate
            if birth is None:
                notes.append(f"{res.label} has no birthDate: {spec.name} not set")
                continue
            ages = _age(birth, as_of)
            where = f"{res.label} (birthDate -> {spec.name})"
            if ages is None or ages[1] < 0:
                problems.append(InputProblem(where, f"birthDate {birth} is after the as-of date {as_of}"))
                continue
            young, old = max(ages[0], 0), ages[1]
            if young != old:  # a year-only birthDate: not enough to count completed years
                notes.append(f"{res.label}: birthDate {birth} gives {spec.name} {young} or {old} on "
                             f"{as_of}: {spec.name} not set")
                continue
            low, high = spec.range or (0, float("inf"))
            if not low <= young <= high:
                problems.append(InputProblem(where, f"{young} {spec.unit} is outside the plausible range "
                                             f"{show(low)}–{show(high)} {spec.unit}"))
                continue
            facts[spec.name] = young
            sources[spec.name] = [f"{res.label} birthDate {birth}"]
