"""FHIR R4 resources -> patient facts: the entry points, joining the Patient, the Observations and the extra facts.

Which resource gives which fact is data, not code: the facts dictionary's `loinc` codes select
Observations (and, with `fhir: {component_of: [...]}`, components of panel Observations), and
`fhir: {patient: birthDate}` gives an age (engine/fhir/mapping.py). Resources are validated in
engine/fhir/resources.py; an Observation becomes a fact in engine/fhir/observations.py; the age
in engine/fhir/patient.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from engine.errors import InputFactsError, InputProblem
from engine.fhir.dates import as_of_cutoff, show_time
from engine.fhir.mapping import code_index
from engine.fhir.observations import Reading, collect, select
from engine.fhir.patient import patient_facts
from engine.fhir.resources import parse_resources
from engine.guideline import Guideline, load
from engine.model.content import Content
from engine.run.input import check_facts


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


def _some(labels: list[str], most: int = 3) -> str:
    shown = sorted(set(labels))
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def read_fhir(source: Any, content: Content, *, extra: Mapping[str, Any] | None = None,
              as_of: date | datetime | str | None = None, include_preliminary: bool = False) -> FhirFacts:
    """Facts from FHIR resources plus extra facts; InputFactsError lists every problem."""
    index = code_index(content)
    day, cutoff = as_of_cutoff(as_of)
    resources, problems = parse_resources(source)
    # fullUrl -> 'Patient/<id>', so urn:uuid references resolve to the Patient they name.
    refs = {r.full_url: f"Patient/{r.model.id}" for r in resources
            if r.type == "Patient" and r.full_url and r.model.id}
    facts: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    notes: list[str] = []
    patient_facts(resources, index, day, facts, sources, notes, problems)
    got = collect(resources, index, cutoff, include_preliminary, refs, problems)
    notes += got.notes
    by_fact: dict[str, list[Reading]] = {}
    for reading in got.readings:
        by_fact.setdefault(reading.spec.name, []).append(reading)
    for name, readings in by_fact.items():
        chosen = select(readings, cutoff, problems, notes)
        if chosen is not None:
            facts[name] = chosen[0]
            sources[name] = [f"{r.label} at {show_time(r.when)}" for r in chosen[1]]
    # Mixing two patients' data would be silently wrong: all subjects must be the one patient.
    patients = [r for r in resources if r.type == "Patient"]
    subjects = dict(got.subjects)
    if len(patients) == 1 and patients[0].model.id:  # more than one Patient is reported by patient_facts
        subjects.setdefault(f"Patient/{patients[0].model.id}", []).append(patients[0].label)
    if len(subjects) > 1:
        problems.append(InputProblem("", "the resources are about more than one subject: "
                                     + "; ".join(f"{s} ({_some(rs)})" for s, rs in sorted(subjects.items()))))
    omitted = 0  # extra-fact problems the fact check counted without keeping them
    if extra is not None:
        try:
            given, _ = check_facts(content, extra)
        except InputFactsError as exc:
            problems += [InputProblem("extra facts", str(p)) for p in exc.problems]
            omitted = exc.omitted
            given = {}
        names = [n for n, v in extra.items() if v is not None] if isinstance(extra, Mapping) else []
        for name in names:
            if name in facts:  # never silently prefer one source over the other
                problems.append(InputProblem(name, f"given in the extra facts and read from FHIR "
                                             f"({', '.join(sources[name])}); give it one way only"))
        for name, value in given.items():
            facts.setdefault(name, value)
            sources.setdefault(name, ["extra facts"])
    if problems:
        raise InputFactsError(problems, omitted)
    order = list(content.facts)
    return FhirFacts(
        facts={n: facts[n] for n in order if n in facts},
        sources={n: tuple(sources[n]) for n in order if n in sources},
        # One per resource id (a label is Type/id, or names the entry of one without an id): a final and
        # a corrected version of the same Observation are one resource, not two.
        notes=tuple(notes), as_of=day, resources=len({r.label for r in resources}), unmapped=got.unmapped,
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
