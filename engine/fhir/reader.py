"""FHIR R4 resources -> patient facts.

Which resource gives which fact is data, not code: the facts dictionary's `loinc` codes select
Observations (and, with `fhir: {component_of: [...]}`, components of panel Observations), and
`fhir: {patient: birthDate}` gives an age. Resources are parsed and validated by fhir.resources
(its R4B models: Bundle, Patient and Observation are element-for-element the same as R4).

Selection, for each fact: among Observations whose status is final / amended / corrected (and
preliminary when asked), effective no later than the as-of date, the most recent one wins
(effectiveDateTime, effectivePeriod.end or .start, effectiveInstant, else issued). When several
could be the most recent (same instant, or an imprecise time such as a bare date overlapping
another) and their values differ, the input is rejected: the engine never guesses which of two
contradictory current values is right.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.errors import GuidelineInvalidError, InputFactsError, did_you_mean
from engine.guideline import Guideline, load
from engine.model.content import Content, FactSpec
from engine.run.explain import show
from engine.run.input import canonical_quantity, check_facts

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
USED_STATUSES = frozenset({"final", "amended", "corrected"})
PRELIMINARY = "preliminary"
SKIPPED_STATUSES = frozenset({"entered-in-error", "cancelled", "registered", "unknown"})
# Observation.value[x] other than Quantity / boolean: present means "a value we cannot read".
OTHER_VALUES = ("valueCodeableConcept", "valueString", "valueInteger", "valueRange", "valueRatio",
                "valueSampledData", "valueTime", "valueDateTime", "valuePeriod")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")  # FHIR year or year-month, no day
_PATIENT_REF = re.compile(r"(?:^|/)(Patient/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")

Interval = tuple[datetime, datetime]  # earliest and latest instant a FHIR time can mean (UTC)


# --- the mapping, read from the facts dictionary ----------------------------------------------

@dataclass(frozen=True)
class CodeIndex:
    observation: dict[str, FactSpec]             # Observation.code (LOINC) -> fact
    component: dict[tuple[str, str], FactSpec]   # (panel code, component code) -> fact
    patient: dict[str, tuple[FactSpec, ...]]     # Patient element -> facts


def mapping(content: Content) -> CodeIndex:
    """The code -> fact index; a code mapped to two facts makes the dictionary invalid."""
    observation: dict[str, FactSpec] = {}
    component: dict[tuple[str, str], FactSpec] = {}
    patient: dict[str, list[FactSpec]] = {}
    problems = []
    for spec in content.facts.values():
        for i, code in enumerate(spec.loinc):
            # One Observation value must never feed two facts: that would be a silent double count.
            other = observation.setdefault(code, spec)
            if other is not spec and spec.where is not None:
                problems.append(spec.where.problem("duplicate-loinc", f"LOINC {code} is already mapped to "
                                                   f"'{other.name}'", "loinc", i))
            for panel in spec.fhir_component_of:
                component.setdefault((panel, code), spec)
        if spec.fhir_patient:
            patient.setdefault(spec.fhir_patient, []).append(spec)
    if problems:
        raise GuidelineInvalidError(problems)
    return CodeIndex(observation, component, {k: tuple(v) for k, v in patient.items()})


def mapping_table(content: Content) -> str:
    """The mapping as a Markdown table (docs/fhir.md is checked against it)."""
    rows = ["| fact | FHIR source | reading used | canonical unit | accepted units |", "|---|---|---|---|---|"]
    for spec in content.facts.values():
        sources = [f"Observation {', '.join(spec.loinc)}"] if spec.loinc else []
        if spec.fhir_component_of:
            sources.append(f"component {', '.join(spec.loinc)} of {', '.join(spec.fhir_component_of)}")
        if spec.fhir_patient:
            sources.append(f"Patient.{spec.fhir_patient} (completed years at the as-of date)")
        if sources:  # units in backticks: `10*9/L` must not turn into Markdown emphasis
            units = ", ".join(f"`{u}`" for u, _ in spec.units) or "—"
            used = ("—" if not spec.loinc else "latest" if spec.fhir_select == "latest"
                    else f"{spec.fhir_select} within {spec.fhir_window_hours:g} h of the latest")
            rows.append(f"| `{spec.name}` | {'; '.join(sources)} | {used} | `{spec.unit}` | {units} |")
    return "\n".join(rows) + "\n"


# --- parsing and validation (fhir.resources) ---------------------------------------------------

@dataclass(frozen=True)
class Resource:
    type: str
    label: str       # "Observation/abc", or "Observation at entry[3]" when it has no id
    named: str       # "entry[3] Observation/abc": its place in the input too
    full_url: str | None
    model: Any       # the validated fhir.resources model


def _loc(loc: Sequence[Any]) -> str:
    """('component', 0, 'valueQuantity') -> 'component[0].valueQuantity'."""
    text = ""
    for part in loc:
        if part in ("root", "__root__"):  # the library's name for "this element as a whole"
            continue
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text or "(resource)"


def _condense(exc: Exception) -> list[str]:
    """The library's validation message, one line per problem, led by the offending path."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):  # the library raises a bare KeyError for an unknown nested resource type
        return [f"unknown resource type {exc} in a nested resource" if isinstance(exc, KeyError) else str(exc)]
    lines = []
    for err in errors():
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
        if err.get("type") == "json_invalid":  # it tries a non-object as JSON text
            msg = "expected a JSON object"
        if err.get("type") == "extra_forbidden":
            msg = "unknown element"
        given = err.get("input")
        if isinstance(given, (str, int, float, bool)) and err.get("type") != "extra_forbidden":
            msg += f" (got {given!r:.60})"
        lines.append(f"{_loc(err.get('loc', ()))}: {msg}")
    return lines


def _validate(data: Any, where: str, problems: list[str]) -> Resource | None:
    """One resource checked by fhir.resources; problems are prefixed with where it is."""
    # Imported here, not at the top: ~0.2 s that only FHIR input should pay.
    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(data, Mapping):
        problems.append(f"{where}: a resource is a JSON object, not {type(data).__name__}")
        return None
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        problems.append(f"{where}: no resourceType")
        return None
    rid = data.get("id")
    has_id = isinstance(rid, str) and bool(rid)
    label = f"{rtype}/{rid}" if has_id else f"{rtype} at {where}"
    named = f"{where} {label}" if has_id else label  # its place in the input, and its id
    try:
        model_class = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        problems.append(f"{where}: unknown resourceType '{rtype}'"
                        f"{did_you_mean(rtype, ('Bundle', 'Patient', 'Observation'))}")
        return None
    try:
        model = model_class.model_validate(dict(data))
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        problems += [f"{named}: {line}" for line in _condense(exc)]
        return None
    return Resource(rtype, label, named, None, model)


def parse(source: Any) -> tuple[list[Resource], list[str]]:
    """A Bundle, a list of resources or one resource -> validated resources (Bundles flattened once)."""
    from fhir.resources.R4B.bundle import Bundle

    problems: list[str] = []
    if isinstance(source, Mapping) and source.get("resourceType") == "Bundle":
        entries = source.get("entry") or []
        # The envelope is validated without the resources, so each resource's problems name it.
        envelope = dict(source)
        if isinstance(entries, list):
            envelope["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, Mapping) else e
                                 for e in entries]
        try:
            Bundle.model_validate(envelope)
        except (ValueError, KeyError, TypeError) as exc:
            return [], [f"Bundle: {line}" for line in _condense(exc)]
        items = [(f"entry[{i}]", e.get("resource"), e.get("fullUrl")) for i, e in enumerate(entries)]
        items = [item for item in items if item[1] is not None]  # e.g. deleted entries of a history
    elif isinstance(source, Mapping):
        items = [("resource", source, None)]
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        items = [(f"[{i}]", r, None) for i, r in enumerate(source)]
    else:
        return [], [f"FHIR input must be a Bundle, a resource or a list of resources, not {type(source).__name__}"]
    resources = []
    for where, data, full_url in items:
        resource = _validate(data, where, problems)
        if resource is None:
            continue
        if resource.type == "Bundle":  # its entries would be silently unread: say so instead
            problems.append(f"{resource.named}: a Bundle inside the input is not read; "
                            "give its resources directly")
            continue
        resources.append(dataclasses.replace(resource, full_url=full_url))
    return resources, problems


# --- times ------------------------------------------------------------------------------------

def _interval(value: Any) -> Interval | None:
    """Earliest and latest UTC instant of a FHIR instant / dateTime / date / year-month / year."""
    if isinstance(value, datetime):
        t = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return t, t
    if isinstance(value, date):
        start = datetime.combine(value, time(), UTC)
        return start, start + timedelta(days=1, microseconds=-1)
    match = _PARTIAL_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month = int(match[1]), int(match[2] or 0)
    start = datetime(year, month or 1, 1, tzinfo=UTC)
    after = datetime(year + (month in (0, 12)), (month % 12) + 1 if month else 1, 1, tzinfo=UTC)
    return start, after - timedelta(microseconds=1)


def _when(obs: Any) -> Interval | None:
    """When an Observation holds: its effective time, else when it was issued."""
    period = obs.effectivePeriod
    for value in (obs.effectiveDateTime, obs.effectiveInstant, period and period.end, period and period.start,
                  obs.issued):
        if value is not None:
            return _interval(value)
    return None


def _show_time(when: Interval) -> str:
    start, end = when
    if start == end:
        return start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{start:%Y-%m-%d}" if start.date() == end.date() else f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"


def _as_of(as_of: date | datetime | str | None) -> tuple[date, datetime]:
    """(the as-of date, the last instant counted): default today in UTC."""
    if isinstance(as_of, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", as_of):
            raise InputFactsError([f"as-of date '{as_of}' is not YYYY-MM-DD"])
        try:
            as_of = date.fromisoformat(as_of)
        except ValueError as exc:
            raise InputFactsError([f"as-of date '{as_of}': {exc}"]) from exc
    if isinstance(as_of, datetime):
        cutoff = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        return cutoff.date(), cutoff
    day = as_of if isinstance(as_of, date) else datetime.now(UTC).date()
    return day, datetime.combine(day, time.max, UTC)


# --- readings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """One candidate value for one fact: an Observation, or one component of a panel."""

    spec: FactSpec
    label: str          # "Observation/abc" or "Observation/bp component 8480-6"
    code: str           # the LOINC code it was matched by
    when: Interval
    holder: Any         # the Observation or ObservationComponent carrying value[x]

    @property
    def name(self) -> str:
        return f"{self.label} (LOINC {self.code} -> {self.spec.name})"


def _codes(concept: Any) -> list[str]:
    """LOINC codes of a CodeableConcept (codings of other systems are not read)."""
    return [c.code for c in (concept.coding or []) if c.system == LOINC and c.code] if concept else []


def _has_value(holder: Any) -> bool:
    return any(getattr(holder, name, None) is not None for name in ("valueQuantity", "valueBoolean", *OTHER_VALUES))


def _matches(obs: Any, label: str, index: CodeIndex, problems: list[str]) -> Iterator[tuple[FactSpec, str, str, Any]]:
    """(fact, code, label, value holder) for each mapped code of the Observation and its components."""
    codes = _codes(obs.code)
    facts = {index.observation[c].name: (index.observation[c], c) for c in codes if c in index.observation}
    if len(facts) > 1:
        problems.append(f"{label}: codes {', '.join(c for _, c in facts.values())} map to different facts "
                        f"({', '.join(facts)}); one Observation can give only one")
        return
    for spec, code in facts.values():
        yield spec, code, label, obs
    for i, comp in enumerate(obs.component or []):
        for code in _codes(comp.code):
            part = next((index.component[(p, code)] for p in codes if (p, code) in index.component), None)
            if part is not None:
                yield part, code, f"{label} component[{i}]", comp


@dataclass
class _Collected:
    readings: list[Reading] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subjects: dict[str, list[str]] = field(default_factory=dict)   # patient reference -> resources
    unmapped: int = 0


def _observations(resources: list[Resource], index: CodeIndex, cutoff: datetime, include_preliminary: bool,
                  refs: dict[str, str], problems: list[str]) -> _Collected:
    got = _Collected()
    for res in resources:
        if res.type != "Observation":
            continue
        obs = res.model
        if obs.status not in USED_STATUSES | SKIPPED_STATUSES | {PRELIMINARY}:
            problems.append(f"{res.label}: status '{obs.status}' is not an R4 Observation status")
            continue
        matches = list(_matches(obs, res.label, index, problems))
        if not matches:
            got.unmapped += 1
            continue
        what = ", ".join(sorted({f"{code} {spec.name}" for spec, code, _, _ in matches}))
        if obs.status in SKIPPED_STATUSES or (obs.status == PRELIMINARY and not include_preliminary):
            got.notes.append(f"skipped {res.label} ({what}): status {obs.status}")
            continue
        when = _when(obs)
        if when is None:
            problems.append(f"{res.label} ({what}): no effective time nor issued: cannot tell how recent it is")
            continue
        if when[0] > cutoff:
            got.notes.append(f"skipped {res.label} ({what}): {_show_time(when)} is after the as-of date")
            continue
        if obs.subject is not None and obs.subject.reference:
            subject = _subject(obs.subject.reference, refs)
            got.subjects.setdefault(subject, []).append(res.label)
        for spec, code, label, holder in matches:
            if _has_value(holder):
                got.readings.append(Reading(spec, label, code, when, holder))
            else:
                absent = holder.dataAbsentReason
                reason = f" (dataAbsentReason: {absent.text or ', '.join(_all_codes(absent))})" if absent else ""
                got.notes.append(f"skipped {label} ({code} {spec.name}): no value{reason}")
    return got


def _all_codes(concept: Any) -> list[str]:
    return [c.code for c in (concept.coding or []) if c.code]


def _some(labels: list[str], most: int = 3) -> str:
    shown = sorted(set(labels))
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def _subject(reference: str, refs: dict[str, str]) -> str:
    """A patient reference in one spelling: 'Patient/<id>' where it can be resolved."""
    if reference in refs:
        return refs[reference]
    match = _PATIENT_REF.search(reference)
    return match[1] if match else reference


# --- values -----------------------------------------------------------------------------------

def _value(reading: Reading, problems: list[str]) -> Any:
    """The reading's value in the fact's canonical unit, or None with the problem recorded."""
    spec, holder = reading.spec, reading.holder
    if spec.type == "boolean":
        if holder.valueBoolean is None:
            problems.append(f"{reading.name}: expected valueBoolean for a true/false fact")
        return holder.valueBoolean
    quantity = holder.valueQuantity
    if spec.type != "number" or quantity is None:
        kind = next((n for n in ("valueQuantity", "valueBoolean", *OTHER_VALUES) if getattr(holder, n, None)
                     is not None), "no value")
        problems.append(f"{reading.name}: {kind} cannot be read as {spec.type}"
                        + ("; expected valueQuantity" if spec.type == "number" else ""))
        return None
    if quantity.comparator:  # "<0.1" is a bound, not a measurement: no threshold can be decided on it
        problems.append(f"{reading.name}: the value is '{quantity.comparator} {quantity.value}', a bound, "
                        f"not a measured value")
        return None
    if quantity.value is None:
        problems.append(f"{reading.name}: valueQuantity has no value")
        return None
    # The UCUM code is the machine-readable unit; `unit` is display text, used only without it.
    unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
    if not unit:
        problems.append(f"{reading.name}: valueQuantity has no unit (expected UCUM {spec.unit})")
        return None
    return canonical_quantity(reading.name, spec, float(quantity.value), unit, problems)


def _select(readings: list[Reading], problems: list[str]) -> tuple[Any, list[Reading]] | None:
    """The value of one fact, or None (problem recorded) when it is contradictory or invalid.

    By default the most recent reading. A fact defined as the highest (or lowest) reading of an
    episode — temperature is the highest reading, not the latest — says so in the facts
    dictionary (`fhir: {select: highest, window_hours: 24}`): then every reading that may fall
    within the window before the most recent one counts, and the extreme value is taken.
    """
    spec = readings[0].spec
    if spec.fhir_select in ("highest", "lowest") and spec.fhir_window_hours is not None:
        end = max(r.when[1] for r in readings)
        start = end - timedelta(hours=spec.fhir_window_hours)
        window = [r for r in readings if r.when[1] >= start]
        values = [(r, _value(r, problems)) for r in window]
        if any(v is None for _, v in values):
            return None
        pick = max if spec.fhir_select == "highest" else min
        value = pick(v for _, v in values)
        return value, [r for r, v in values if v == value]
    # A reading is possibly the latest unless another certainly comes after it.
    latest = [r for r in readings if not any(o.when[0] > r.when[1] for o in readings)]
    values = [(r, _value(r, problems)) for r in latest]
    if any(v is None for _, v in values):
        return None
    distinct = {v for _, v in values}
    if len(distinct) > 1:
        spec = latest[0].spec
        listed = "; ".join(f"{r.label} {show(v)} {spec.unit or ''} at {_show_time(r.when)}".replace("  ", " ")
                           for r, v in values)
        problems.append(f"{spec.name}: cannot tell which value is the most recent ({listed}); "
                        "correct the record (e.g. mark one entered-in-error)")
        return None
    return values[0][1], latest


# --- Patient ----------------------------------------------------------------------------------

def _age(birth: Any, on: date) -> tuple[int, int] | None:
    """(youngest, oldest) completed years on a date for a FHIR birthDate (possibly year or year-month)."""
    span = _interval(birth)
    if span is None:
        return None
    first, last = span[0].date(), span[1].date()

    def years(born: date) -> int:
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))

    return years(last), years(first)


def _patient(resources: list[Resource], index: CodeIndex, as_of: date, facts: dict[str, Any],
             sources: dict[str, list[str]], notes: list[str], problems: list[str]) -> None:
    patients = [r for r in resources if r.type == "Patient"]
    if len(patients) > 1:
        problems.append(f"{len(patients)} Patient resources ({', '.join(p.label for p in patients)}): "
                        "the input must be about one patient")
        return
    for res in patients:
        for spec in index.patient.get("birthDate", ()):
            birth = res.model.birthDate
            if birth is None:
                notes.append(f"{res.label} has no birthDate: {spec.name} not set")
                continue
            ages = _age(birth, as_of)
            if ages is None or ages[1] < 0:
                problems.append(f"{res.label} (birthDate -> {spec.name}): birthDate {birth} is after the "
                                f"as-of date {as_of}")
                continue
            young, old = max(ages[0], 0), ages[1]
            if young != old:  # a year-only birthDate: not enough to count completed years
                notes.append(f"{res.label}: birthDate {birth} gives {spec.name} {young} or {old} on "
                             f"{as_of}: {spec.name} not set")
                continue
            low, high = spec.range or (0, float("inf"))
            if not low <= young <= high:
                problems.append(f"{res.label} (birthDate -> {spec.name}): {young} {spec.unit} is outside the "
                                f"plausible range {show(low)}–{show(high)} {spec.unit}")
                continue
            facts[spec.name] = young
            sources[spec.name] = [f"{res.label} birthDate {birth}"]


# --- the whole conversion ---------------------------------------------------------------------

@dataclass(frozen=True)
class FhirFacts:
    """Facts read from FHIR (canonical units) plus the extra facts, and where each came from."""

    facts: dict[str, Any]
    sources: dict[str, tuple[str, ...]]   # fact -> the resources (or 'extra facts') it was read from
    notes: tuple[str, ...]                # what was skipped, and why
    as_of: date
    resources: int
    unmapped: int                         # Observations with no code in the facts dictionary
    other: int                            # resources neither Patient nor Observation

    def summary(self) -> list[str]:
        read = [f for f, s in self.sources.items() if s != ("extra facts",)]
        head = (f"read {len(read)} fact(s) from {self.resources} FHIR resource(s) as of {self.as_of}: "
                f"{', '.join(read) or 'none'}")
        lines = [head]
        lines += self.notes
        ignored = [f"{self.unmapped} Observation(s) with no code in the facts dictionary"] if self.unmapped else []
        ignored += [f"{self.other} resource(s) neither Patient nor Observation"] if self.other else []
        if ignored:
            lines.append(f"ignored {' and '.join(ignored)}")
        return lines


def read_fhir(source: Any, content: Content, *, extra: Mapping[str, Any] | None = None,
              as_of: date | datetime | str | None = None, include_preliminary: bool = False) -> FhirFacts:
    """Facts from FHIR resources plus extra facts; InputFactsError lists every problem."""
    index = mapping(content)
    day, cutoff = _as_of(as_of)
    resources, problems = parse(source)
    # fullUrl -> 'Patient/<id>', so urn:uuid references resolve to the Patient they name.
    refs = {r.full_url: f"Patient/{r.model.id}" for r in resources
            if r.type == "Patient" and r.full_url and r.model.id}
    facts: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    notes: list[str] = []
    _patient(resources, index, day, facts, sources, notes, problems)
    got = _observations(resources, index, cutoff, include_preliminary, refs, problems)
    notes += got.notes
    by_fact: dict[str, list[Reading]] = {}
    for reading in got.readings:
        by_fact.setdefault(reading.spec.name, []).append(reading)
    for name, readings in by_fact.items():
        chosen = _select(readings, problems)
        if chosen is not None:
            facts[name] = chosen[0]
            sources[name] = [f"{r.label} at {_show_time(r.when)}" for r in chosen[1]]
    # Mixing two patients' data would be silently wrong: all subjects must be the one patient.
    patients = [r for r in resources if r.type == "Patient"]
    subjects = dict(got.subjects)
    if len(patients) == 1 and patients[0].model.id:  # more than one Patient is reported by _patient
        subjects.setdefault(f"Patient/{patients[0].model.id}", []).append(patients[0].label)
    if len(subjects) > 1:
        problems.append("the resources are about more than one subject: "
                        + "; ".join(f"{s} ({_some(rs)})" for s, rs in sorted(subjects.items())))
    if extra is not None:
        try:
            given, _ = check_facts(content, extra)
        except InputFactsError as exc:
            problems += [f"extra facts: {p}" for p in exc.problems]
            given = {}
        names = [n for n, v in extra.items() if v is not None] if isinstance(extra, Mapping) else []
        for name in names:
            if name in facts:  # never silently prefer one source over the other
                problems.append(f"{name}: given in the extra facts and read from FHIR "
                                f"({', '.join(sources[name])}); give it one way only")
        for name, value in given.items():
            facts.setdefault(name, value)
            sources.setdefault(name, ["extra facts"])
    if problems:
        raise InputFactsError(problems)
    order = list(content.facts)
    return FhirFacts(
        facts={n: facts[n] for n in order if n in facts},
        sources={n: tuple(sources[n]) for n in order if n in sources},
        notes=tuple(notes), as_of=day, resources=len(resources), unmapped=got.unmapped,
        other=sum(r.type not in ("Patient", "Observation") for r in resources))


def facts_from_fhir(source: Any, guideline: Guideline | None = None, *, extra: Mapping[str, Any] | None = None,
                    as_of: date | datetime | str | None = None, include_preliminary: bool = False) -> dict[str, Any]:
    """Patient facts (canonical units, ready for Guideline.evaluate) from FHIR R4 resources.

    `source`: a Bundle, a list of resources or one resource, as parsed JSON. `guideline` supplies
    the facts dictionary (default: the bundled one, loaded on each call). `extra`: facts FHIR does
    not carry; a fact given both ways is an error. `as_of`: date for ages and the latest time an
    Observation may have (default today, UTC). Raises InputFactsError listing every problem.
    """
    content = (guideline if guideline is not None else load()).content
    return read_fhir(source, content, extra=extra, as_of=as_of, include_preliminary=include_preliminary).facts
