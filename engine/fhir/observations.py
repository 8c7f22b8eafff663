"""An Observation becomes a fact: matched by LOINC code, valued in the canonical unit, one reading selected.

Which Observations count: status final / amended / corrected (and preliminary when asked),
effective no later than the as-of date. The most recent one wins (effectiveDateTime,
effectivePeriod.end or .start, effectiveInstant, else issued; each an interval, see
engine/fhir/timing.py). When several could be the most recent (same instant, or an imprecise
time such as a bare date overlapping another) and their values differ, the input is rejected: the
engine never guesses which of two contradictory current values is right. A fact the facts
dictionary defines as the highest (or lowest) reading within a window takes the extreme value of
every reading that may lie in the window instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import InputProblem
from engine.fhir.dates import Interval, show_time
from engine.fhir.mapping import LOINC, CodeIndex
from engine.fhir.resources import Resource
from engine.fhir.timing import Timing, observation_timing, window
from engine.model.content import FactSpec
from engine.run.explain import show
from engine.run.input import canonical_quantity

UCUM = "http://unitsofmeasure.org"
USED_STATUSES = frozenset({"final", "amended", "corrected"})
PRELIMINARY = "preliminary"
SKIPPED_STATUSES = frozenset({"entered-in-error", "cancelled", "registered", "unknown"})
# Observation.value[x] other than Quantity / boolean: present means "a value we cannot read".
OTHER_VALUES = ("valueCodeableConcept", "valueString", "valueInteger", "valueRange", "valueRatio",
                "valueSampledData", "valueTime", "valueDateTime", "valuePeriod")
LISTED = 5  # readings named in a contradiction; a record with thousands names the first few, then a count
_PATIENT_REF = re.compile(r"(?:^|/)(Patient/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@dataclass(frozen=True)
class Reading:
    """One candidate value for one fact: an Observation, or one component of a panel."""

    spec: FactSpec
    label: str          # "Observation/abc" or "Observation/bp component 8480-6"
    code: str           # the LOINC code it was matched by
    when: Interval      # orders the readings (the end of a period)
    holder: Any         # the Observation or ObservationComponent carrying value[x]
    span: Interval      # every instant the value may belong to (a whole period)

    @property
    def name(self) -> str:
        return f"{self.label} (LOINC {self.code} -> {self.spec.name})"


@dataclass
class Collected:
    """The readings of every mapped Observation, and what was skipped or noticed on the way."""

    readings: list[Reading] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subjects: dict[str, list[str]] = field(default_factory=dict)   # patient reference -> resources
    unmapped: int = 0


# --- matching and collecting ------------------------------------------------------------------

def _codes(concept: Any) -> list[str]:
    """LOINC codes of a CodeableConcept (codings of other systems are not read)."""
    return [c.code for c in (concept.coding or []) if c.system == LOINC and c.code] if concept else []


def _all_codes(concept: Any) -> list[str]:
    return [c.code for c in (concept.coding or []) if c.code]


def _has_value(holder: Any) -> bool:
    return any(getattr(holder, name, None) is not None for name in ("valueQuantity", "valueBoolean", *OTHER_VALUES))


def _subject(reference: str, refs: dict[str, str]) -> str:
    """A patient reference in one spelling: 'Patient/<id>' where it can be resolved."""
    if reference in refs:
        return refs[reference]
    match = _PATIENT_REF.search(reference)
    return match[1] if match else reference


def _matches(obs: Any, label: str, index: CodeIndex,
             problems: list[InputProblem]) -> Iterator[tuple[FactSpec, str, str, Any]]:
    """(fact, code, label, value holder) for each mapped code of the Observation and its components."""
    codes = _codes(obs.code)
    facts = {index.observation[c].name: (index.observation[c], c) for c in codes if c in index.observation}
    if len(facts) > 1:
        problems.append(InputProblem(label, f"codes {', '.join(c for _, c in facts.values())} map to different "
                                     f"facts ({', '.join(facts)}); one Observation can give only one"))
        return
    for spec, code in facts.values():
        yield spec, code, label, obs
    for i, comp in enumerate(obs.component or []):
        for code in _codes(comp.code):
            part = next((index.component[(p, code)] for p in codes if (p, code) in index.component), None)
            if part is not None:
                yield part, code, f"{label} component[{i}]", comp


def collect(resources: list[Resource], index: CodeIndex, cutoff: datetime, include_preliminary: bool,
            refs: dict[str, str], problems: list[InputProblem]) -> Collected:
    """Every usable reading of a mapped Observation up to `cutoff`; `refs` maps fullUrl -> 'Patient/<id>'."""
    got = Collected()
    for res in resources:
        if res.type != "Observation":
            continue
        obs = res.model
        if obs.status not in USED_STATUSES | SKIPPED_STATUSES | {PRELIMINARY}:
            problems.append(InputProblem(res.label, f"status '{obs.status}' is not an R4 Observation status"))
            continue
        matches = list(_matches(obs, res.label, index, problems))
        if not matches:
            got.unmapped += 1
            continue
        what = ", ".join(sorted({f"{code} {spec.name}" for spec, code, _, _ in matches}))
        if obs.status in SKIPPED_STATUSES or (obs.status == PRELIMINARY and not include_preliminary):
            got.notes.append(f"skipped {res.label} ({what}): status {obs.status}")
            continue
        timing = observation_timing(obs)
        if not isinstance(timing, Timing):
            problems.append(InputProblem(f"{res.label} ({what})", timing))
            continue
        when = timing.when
        if when[0] > cutoff:
            got.notes.append(f"skipped {res.label} ({what}): {show_time(when)} is after the as-of date")
            continue
        if obs.subject is not None and obs.subject.reference:
            subject = _subject(obs.subject.reference, refs)
            got.subjects.setdefault(subject, []).append(res.label)
        for spec, code, label, holder in matches:
            if _has_value(holder):
                got.readings.append(Reading(spec, label, code, when, holder, timing.span))
            else:
                absent = holder.dataAbsentReason
                reason = f" (dataAbsentReason: {absent.text or ', '.join(_all_codes(absent))})" if absent else ""
                got.notes.append(f"skipped {label} ({code} {spec.name}): no value{reason}")
    return got


# --- values and selection ---------------------------------------------------------------------

def _value(reading: Reading, problems: list[InputProblem]) -> Any:
    """The reading's value in the fact's canonical unit, or None with the problem recorded."""
    spec, holder = reading.spec, reading.holder
    if spec.type == "boolean":
        if holder.valueBoolean is None:
            problems.append(InputProblem(reading.name, "expected valueBoolean for a true/false fact"))
        return holder.valueBoolean
    quantity = holder.valueQuantity
    if spec.type != "number" or quantity is None:
        kind = next((n for n in ("valueQuantity", "valueBoolean", *OTHER_VALUES) if getattr(holder, n, None)
                     is not None), "no value")
        problems.append(InputProblem(reading.name, f"{kind} cannot be read as {spec.type}"
                                     + ("; expected valueQuantity" if spec.type == "number" else "")))
        return None
    if quantity.comparator:  # "<0.1" is a bound, not a measurement: no threshold can be decided on it
        problems.append(InputProblem(reading.name, f"the value is '{quantity.comparator} {quantity.value}', "
                                     "a bound, not a measured value"))
        return None
    if quantity.value is None:
        problems.append(InputProblem(reading.name, "valueQuantity has no value"))
        return None
    # The UCUM code is the machine-readable unit; `unit` is display text, used only without it.
    unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
    if not unit:
        problems.append(InputProblem(reading.name, f"valueQuantity has no unit (expected UCUM {spec.unit})"))
        return None
    return canonical_quantity(reading.name, spec, float(quantity.value), unit, problems)


def _extreme(readings: list[Reading], how: str, hours: float, cutoff: datetime, problems: list[InputProblem],
             notes: list[str]) -> tuple[Any, list[Reading]] | None:
    """The highest (lowest) value of every reading that may lie within `hours` of the latest."""
    held = window([Timing(r.when, r.span) for r in readings], hours, cutoff)
    counted = [(i, readings[i], _value(readings[i], problems)) for i in held.may]
    if any(v is None for _, _, v in counted):
        return None
    value = (max if how == "highest" else min)(v for _, _, v in counted)
    chosen = [(i, r) for i, r, v in counted if v == value]
    if not any(i in held.sure for i, _ in chosen):
        # Counted, and said: the most alarming value that may be current is never dropped.
        spec = readings[0].spec
        where = "; ".join(f"{r.label} at {show_time(r.span)}" for _, r in chosen)
        notes.append(f"{spec.name}: {show(value)} {spec.unit or ''} ({where}) may lie more than {hours:g} h before "
                     f"the latest reading; counted as the {how} within the window".replace("  ", " "))
    return value, [r for _, r in chosen]


def select(readings: list[Reading], cutoff: datetime, problems: list[InputProblem],
           notes: list[str]) -> tuple[Any, list[Reading]] | None:
    """The value of one fact and the readings it came from, or None (problem recorded) when it is
    contradictory or invalid.

    By default the most recent reading. A fact defined as the highest (or lowest) reading of an
    episode — temperature is the highest reading, not the latest — says so in the facts
    dictionary (`fhir: {select: highest, window_hours: 24}`): then every reading that may fall
    within the window before the most recent one counts, and the extreme value is taken
    (engine/fhir/timing.py says why a reading that may lie outside never hides one inside).
    """
    spec = readings[0].spec
    if spec.fhir_select in ("highest", "lowest") and spec.fhir_window_hours is not None:
        return _extreme(readings, spec.fhir_select, spec.fhir_window_hours, cutoff, problems, notes)
    # A reading is possibly the latest unless another certainly comes after it, that is unless
    # some reading begins after it ends; one pass (comparing every pair was quadratic: 5,000
    # same-day readings took 14 s).
    surely_by = max(o.when[0] for o in readings)
    latest = [r for r in readings if r.when[1] >= surely_by]
    values = [(r, _value(r, problems)) for r in latest]
    if any(v is None for _, v in values):
        return None
    distinct = {v for _, v in values}
    if len(distinct) > 1:
        spec = latest[0].spec
        listed = "; ".join(f"{r.label} {show(v)} {spec.unit or ''} at {show_time(r.when)}".replace("  ", " ")
                           for r, v in values[:LISTED])
        listed += f"; and {len(values) - LISTED} more" if len(values) > LISTED else ""
        problems.append(InputProblem(spec.name, f"cannot tell which value is the most recent ({listed}); "
                                     "correct the record (e.g. mark one entered-in-error)"))
        return None
    return values[0][1], latest
