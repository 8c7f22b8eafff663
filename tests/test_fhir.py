"""FHIR R4 -> patient facts (engine.facts_from_fhir, `guideline evaluate --fhir`).

Observations and Patients are built small and explicit here; the examples in examples/fhir/ are
checked end to end against the plain-facts examples they mirror.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import replace_once

import engine
from engine import cli
from engine.fhir.mapping import mapping_table
from engine.fhir.reader import read_fhir
from engine.run.input import check_facts

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FHIR_EXAMPLES = sorted(p.stem for p in (EXAMPLES / "fhir").glob("*.json") if not p.stem.endswith("-extra"))
AS_OF = "2024-05-03"
UCUM = "http://unitsofmeasure.org"


# --- building resources -----------------------------------------------------------------------

def quantity(value: float, unit: str | None, system: str | None = UCUM, text: str | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if unit is not None:
        q["code"] = unit
    if system is not None:
        q["system"] = system
    if text is not None:
        q["unit"] = text
    return q


def obs(rid: str, code: str, value: Any = None, unit: str | None = None, when: str | None = "2024-05-03T08:00:00Z",
        status: str = "final", **more: Any) -> dict[str, Any]:
    """An Observation coded with one LOINC code; `value` a number (valueQuantity in `unit`) or None."""
    resource: dict[str, Any] = {"resourceType": "Observation", "id": rid, "status": status,
                                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                                "subject": {"reference": "Patient/p1"}}
    if when is not None:
        resource["effectiveDateTime"] = when
    if value is not None:
        resource["valueQuantity"] = quantity(value, unit)
    resource.update(more)
    return resource


def patient(birth: str | None = "1970-06-15", rid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, **({"birthDate": birth} if birth else {})}


def bundle(*resources: dict[str, Any], full_urls: bool = False) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [{"resource": r} for r in resources]
    if full_urls:
        for e in entries:
            e["fullUrl"] = f"urn:uuid:{e['resource']['id']}"
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def panel(rid: str, code: str, systolic: float, when: str = "2024-05-03T08:00:00Z") -> dict[str, Any]:
    def component(c: str, v: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": c}]}, "valueQuantity": quantity(v, "mm[Hg]")}
    return obs(rid, code, when=when, component=[component("8480-6", systolic), component("8462-4", 70)])


@pytest.fixture
def read(guideline: engine.Guideline):
    """read(source, **kw) -> FhirFacts, as of AS_OF unless given."""
    def run(source: Any, **kw: Any):
        kw.setdefault("as_of", AS_OF)
        return read_fhir(source, guideline.content, **kw)
    return run


@pytest.fixture
def rejected(read):
    """rejected(source, **kw) -> the InputFactsError problems, joined by newlines."""
    def run(source: Any, **kw: Any) -> str:
        with pytest.raises(engine.InputFactsError) as info:
            read(source, **kw)
        return "\n".join(map(str, info.value.problems))
    return run


def run_cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


# --- the mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "fact", "value", "unit", "expected"), [
    ("751-8", "anc", 0.3, "10*9/L", 0.3),
    ("753-4", "anc", 0.4, "10*3/uL", 0.4),
    ("26499-4", "anc", 500, "/uL", 0.5),
    ("6690-2", "wbc", 1.8, "10*3/uL", 1.8),
    ("26464-8", "wbc", 2500, "10*6/L", 2.5),
    ("770-8", "neutrophils_pct", 16, "%", 16),
    ("764-1", "bands_pct", 4, "%", 4),
    ("26508-2", "bands_pct", 6, "%", 6),
    ("731-0", "lymphocytes", 800, "/uL", 0.8),
    ("26474-7", "lymphocytes", 1.1, "10*9/L", 1.1),
    ("718-7", "hemoglobin", 95, "g/L", 9.5),
    ("8310-5", "temperature", 101.3, "[degF]", 38.5),
    ("8310-5", "temperature", 100.4, "[degF]", 38.0),
    ("8480-6", "systolic_bp", 84, "mm[Hg]", 84),
])
def test_each_loinc_code_gives_its_fact_in_canonical_units(read, code, fact, value, unit, expected) -> None:
    facts = read(bundle(patient(None), obs("o1", code, value, unit))).facts
    assert facts == {fact: expected}


@pytest.mark.parametrize("panel_code", ["85354-9", "55284-4"])
def test_systolic_bp_from_a_blood_pressure_panel_component(read, panel_code: str) -> None:
    got = read(bundle(patient(None), panel("bp1", panel_code, 96)))
    assert got.facts == {"systolic_bp": 96}
    assert got.sources["systolic_bp"] == ("Observation/bp1 component[0] at 2024-05-03T08:00:00Z",)


def test_components_of_other_observations_are_not_read(read) -> None:
    # 8480-6 as a component of a heart-rate Observation is not the mapped panel: not read.
    got = read(bundle(patient(None), panel("x", "8867-4", 96)))
    assert got.facts == {} and got.unmapped == 1


def test_standalone_systolic_and_panel_compete_by_time(read) -> None:
    got = read(bundle(patient(None), panel("bp-old", "85354-9", 120, "2024-05-02T08:00:00Z"),
                      obs("sbp-new", "8480-6", 84, "mm[Hg]", "2024-05-03T08:00:00Z")))
    assert got.facts == {"systolic_bp": 84}


@pytest.mark.parametrize(("birth", "as_of", "age"), [
    ("1970-06-15", "2024-06-14", 53),   # the day before the birthday
    ("1970-06-15", "2024-06-15", 54),   # on the birthday
    ("1970-06-15", "2024-12-31", 54),
    ("2000-02-29", "2023-02-28", 22),   # leap-day birthday, not yet in a common year
    ("2000-02-29", "2023-03-01", 23),
    ("1970-01", "2024-05-03", 54),      # year-month is enough when the whole month gives the same age
    ("2024-05-03", "2024-05-03", 0),
])
def test_age_from_birth_date_at_the_as_of_date(read, birth: str, as_of: str, age: int) -> None:
    assert read(bundle(patient(birth)), as_of=as_of).facts == {"age": age}


def test_age_as_of_a_date_object_and_default_today(read, guideline: engine.Guideline) -> None:
    assert read(patient("1970-06-15"), as_of=date(2024, 6, 15)).facts == {"age": 54}
    born = date(datetime.now(UTC).year - 40, 1, 1)  # 40 on any day of this year
    assert engine.facts_from_fhir(patient(born.isoformat()), guideline) == {"age": 40}


def test_imprecise_birth_date_leaves_age_unset_with_a_note(read) -> None:
    got = read(bundle(patient("1970")))  # 53 or 54 on 2024-05-03
    assert "age" not in got.facts
    assert any("birthDate 1970 gives age 53 or 54" in n for n in got.notes)


def test_birth_date_after_the_as_of_date_is_rejected(rejected) -> None:
    assert "birthDate 2025-01-01 is after the as-of date 2024-05-03" in rejected(patient("2025-01-01"))


def test_patient_without_birth_date_gives_no_age(read) -> None:
    got = read(bundle(patient(None)))
    assert got.facts == {} and any("has no birthDate" in n for n in got.notes)


def test_mapping_is_data_a_second_guideline_maps_other_codes(bundled_copy: Path, edit_yaml) -> None:
    # A calculated haemoglobin (LOINC 20509-6) and a systolic BP component of a vital-signs panel
    # (85353-1): facts.yaml edits only, no Python change.
    edit_yaml("facts.yaml", 'loinc: ["718-7"]', 'loinc: ["718-7", "20509-6"]')
    edit_yaml("facts.yaml", 'component_of: ["85354-9", "55284-4"]', 'component_of: ["85354-9", "85353-1"]')
    other = engine.load(bundled_copy)
    facts = engine.facts_from_fhir(bundle(obs("h", "20509-6", 9.1, "g/dL"), panel("vs", "85353-1", 101)), other,
                                   as_of=AS_OF)
    assert facts == {"hemoglobin": 9.1, "systolic_bp": 101}
    # ... and the bundled guideline does not know them.
    assert engine.facts_from_fhir(bundle(obs("h", "20509-6", 9.1, "g/dL"), panel("vs", "85353-1", 101)),
                                  engine.load(), as_of=AS_OF) == {}


def test_a_code_mapped_to_two_facts_makes_the_dictionary_invalid(bundled_copy: Path, edit_yaml) -> None:
    edit_yaml("facts.yaml", 'loinc: ["718-7"]', 'loinc: ["718-7", "751-8"]')
    with pytest.raises(engine.GuidelineInvalidError) as info:
        engine.facts_from_fhir(obs("a", "751-8", 0.3, "10*9/L"), engine.load(bundled_copy))
    assert "duplicate-loinc" in str(info.value) and "751-8" in str(info.value) and "'anc'" in str(info.value)


@pytest.mark.parametrize(("old", "new", "fragment"), [
    ("    range: [0, 130]\n    fhir: {patient: birthDate}\n", "    range: [0, 130]\n    fhir: {patient: name}\n",
     "birthDate"),
    ('fhir: {component_of: ["85354-9", "55284-4"], select: lowest, window_hours: 24}',
     'fhir: {components: ["85354-9"]}', "unknown key 'components'"),
    ("fhir: {select: highest, window_hours: 24}", "fhir: {select: highest}", "window_hours"),
    ("fhir: {select: highest, window_hours: 24}", "fhir: {select: hottest, window_hours: 24}", "hottest"),
    ('    type: boolean\n    description: Chronic obstructive', ('    type: boolean\n    fhir: {patient: birthDate}\n'
     '    description: Chronic obstructive'), "'number' was expected"),
])
def test_fhir_key_is_schema_checked(bundled_copy: Path, old: str, new: str, fragment: str) -> None:
    replace_once(bundled_copy / "facts.yaml", old, new)
    problems = engine.validate(bundled_copy)
    assert problems and any(fragment in str(p) for p in problems), problems


def test_boolean_facts_read_value_boolean_and_enum_facts_are_refused(bundled_copy: Path, edit_yaml) -> None:
    edit_yaml("facts.yaml", "  copd:\n    type: boolean\n", '  copd:\n    type: boolean\n    loinc: ["99999-9"]\n')
    edit_yaml("facts.yaml", "  symptom_burden:\n    type: enum\n",
              '  symptom_burden:\n    type: enum\n    loinc: ["99998-8"]\n')
    other = engine.load(bundled_copy)
    assert engine.facts_from_fhir(obs("c", "99999-9", valueBoolean=False), other, as_of=AS_OF) == {"copd": False}
    with pytest.raises(engine.InputFactsError) as info:
        engine.facts_from_fhir([obs("c", "99999-9", 1, "1"), obs("s", "99998-8", valueString="mild")], other,
                               as_of=AS_OF)
    assert list(map(str, info.value.problems)) == [
        "Observation/c (LOINC 99999-9 -> copd): expected valueBoolean for a true/false fact",
        "Observation/s (LOINC 99998-8 -> symptom_burden): valueString cannot be read as enum"]


def test_as_of_an_instant_counts_observations_up_to_it(read) -> None:
    source = bundle(obs("a", "751-8", 0.9, "10*9/L", "2024-05-03T08:00:00Z"),
                    obs("b", "751-8", 0.3, "10*9/L", "2024-05-03T12:00:00Z"))
    assert read(source, as_of=datetime(2024, 5, 3, 10, 0, tzinfo=UTC)).facts == {"anc": 0.9}
    assert read(source, as_of="2024-05-03").facts == {"anc": 0.3}


def test_mapping_table_in_docs_matches_the_facts_dictionary(guideline: engine.Guideline) -> None:
    assert mapping_table(guideline.content) in (ROOT / "docs" / "fhir.md").read_text(encoding="utf-8")


# --- selecting the value ----------------------------------------------------------------------

def test_most_recent_value_wins_whatever_the_bundle_order(read) -> None:
    old = obs("anc-old", "751-8", 1.2, "10*9/L", "2024-05-01T08:00:00Z")
    new = obs("anc-new", "751-8", 0.3, "10*9/L", "2024-05-03T08:00:00Z")
    assert read(bundle(new, old)).facts == read(bundle(old, new)).facts == {"anc": 0.3}


def test_time_zones_are_compared_as_instants(read) -> None:
    # 09:00+02:00 is 07:00Z: earlier than 08:00Z.
    got = read(bundle(obs("a", "751-8", 0.9, "10*9/L", "2024-05-03T09:00:00+02:00"),
                      obs("b", "751-8", 0.3, "10*9/L", "2024-05-03T08:00:00Z")))
    assert got.facts == {"anc": 0.3}


@pytest.mark.parametrize("timing", [
    {"effectivePeriod": {"start": "2024-05-01T06:00:00Z", "end": "2024-05-03T09:00:00Z"}},
    {"effectivePeriod": {"start": "2024-05-03T09:00:00Z"}},
    {"effectiveInstant": "2024-05-03T09:00:00.000Z"},
    {"issued": "2024-05-03T09:00:00Z"},
])
def test_effective_period_instant_and_issued_give_the_time(read, timing: dict[str, Any]) -> None:
    newer = obs("b", "751-8", 0.3, "10*9/L", when=None, **timing)
    got = read(bundle(obs("a", "751-8", 0.9, "10*9/L", "2024-05-03T08:30:00Z"), newer))
    assert got.facts == {"anc": 0.3}


def test_effective_time_is_preferred_to_issued(read) -> None:
    late_report = obs("a", "751-8", 0.9, "10*9/L", "2024-05-01T08:00:00Z", issued="2024-05-04T08:00:00Z")
    got = read(bundle(late_report, obs("b", "751-8", 0.3, "10*9/L", "2024-05-02T08:00:00Z")), as_of="2024-05-05")
    assert got.facts == {"anc": 0.3}


def test_observation_without_any_time_is_rejected(rejected) -> None:
    assert "Observation/a (751-8 anc): no effective time nor issued" in rejected(obs("a", "751-8", 0.3, "10*9/L",
                                                                                    when=None))


def test_different_values_at_the_same_time_are_rejected(rejected) -> None:
    message = rejected(bundle(obs("a", "751-8", 0.3, "10*9/L"), obs("b", "753-4", 0.6, "10*9/L")))
    assert "anc: cannot tell which value is the most recent" in message
    assert "Observation/a 0.3 10*9/L" in message and "Observation/b 0.6 10*9/L" in message


def test_equal_values_at_the_same_time_are_accepted(read) -> None:
    # 300 /uL and 0.3 10*9/L are the same value: not a contradiction.
    got = read(bundle(obs("a", "751-8", 0.3, "10*9/L"), obs("b", "26499-4", 300, "/uL")))
    assert got.facts == {"anc": 0.3}
    assert len(got.sources["anc"]) == 2


def test_a_bare_date_overlapping_a_timed_value_is_ambiguous(read, rejected) -> None:
    dated = obs("a", "751-8", 0.9, "10*9/L", "2024-05-03")
    assert "cannot tell which value is the most recent" in rejected(bundle(dated, obs("b", "751-8", 0.3, "10*9/L")))
    # a bare date before the timed value's day is simply older
    assert read(bundle(obs("c", "751-8", 0.9, "10*9/L", "2024-05-02"), obs("b", "751-8", 0.3, "10*9/L"))).facts == \
        {"anc": 0.3}


def test_observations_after_the_as_of_date_are_skipped(read) -> None:
    got = read(bundle(obs("a", "751-8", 0.9, "10*9/L", "2024-05-02T08:00:00Z"),
                      obs("b", "751-8", 0.3, "10*9/L", "2024-05-04T08:00:00Z")))
    assert got.facts == {"anc": 0.9}
    assert any("Observation/b" in n and "after the as-of date" in n for n in got.notes)


@pytest.mark.parametrize(("status", "used"), [
    ("final", True), ("amended", True), ("corrected", True), ("preliminary", False),
    ("entered-in-error", False), ("cancelled", False), ("registered", False), ("unknown", False),
])
def test_status_filter(read, status: str, used: bool) -> None:
    older = obs("old", "751-8", 1.2, "10*9/L", "2024-05-01T08:00:00Z")
    got = read(bundle(older, obs("new", "751-8", 0.3, "10*9/L", status=status)))
    assert got.facts == {"anc": 0.3 if used else 1.2}
    assert any(f"skipped Observation/new (751-8 anc): status {status}" == n for n in got.notes) is not used


def test_include_preliminary(read, guideline: engine.Guideline) -> None:
    source = bundle(obs("old", "751-8", 1.2, "10*9/L", "2024-05-01T08:00:00Z"),
                    obs("new", "751-8", 0.3, "10*9/L", status="preliminary"))
    assert read(source, include_preliminary=True).facts == {"anc": 0.3}
    assert engine.facts_from_fhir(source, guideline, as_of=AS_OF, include_preliminary=True) == {"anc": 0.3}
    # entered-in-error is never used
    source = bundle(obs("eie", "751-8", 0.3, "10*9/L", status="entered-in-error"))
    assert read(source, include_preliminary=True).facts == {}


def test_an_unknown_status_is_malformed(rejected) -> None:
    assert "Observation/a: status 'finished' is not an R4 Observation status" in \
        rejected(obs("a", "751-8", 0.3, "10*9/L", status="finished"))


def test_observation_without_a_value_is_skipped(read) -> None:
    absent = obs("a", "751-8", when="2024-05-03T09:00:00Z",
                 dataAbsentReason={"coding": [{"code": "error"}], "text": "Specimen clotted"})
    got = read(bundle(obs("old", "751-8", 0.9, "10*9/L", "2024-05-02T08:00:00Z"), absent))
    assert got.facts == {"anc": 0.9}
    assert any("Observation/a (751-8 anc): no value (dataAbsentReason: Specimen clotted)" in n for n in got.notes)


def test_unmapped_codes_and_other_resources_are_counted(read) -> None:
    got = read(bundle(patient(None), obs("plt", "777-3", 45, "10*3/uL"), obs("a", "751-8", 0.3, "10*9/L"),
                      {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}))
    assert got.facts == {"anc": 0.3}
    assert (got.unmapped, got.other, got.resources) == (1, 1, 4)
    assert "ignored 1 Observation(s) with no code in the facts dictionary and 1 resource(s) neither Patient nor " \
           "Observation" in got.summary()


def test_codings_of_other_systems_are_not_read(read) -> None:
    local = obs("a", "751-8", 0.3, "10*9/L")
    local["code"]["coding"][0]["system"] = "http://hospital.example.org/lab-codes"
    assert read(local).facts == {}


# --- units, ranges and value types -------------------------------------------------------------

def test_ucum_code_is_preferred_to_the_display_unit(read) -> None:
    reading = obs("a", "8480-6", when="2024-05-03T08:00:00Z", valueQuantity=quantity(84, "mm[Hg]", text="mmHg"))
    assert read(reading).facts == {"systolic_bp": 84}


def test_display_unit_is_used_when_there_is_no_ucum_code(read, rejected) -> None:
    no_system = obs("a", "718-7", valueQuantity=quantity(95, None, system=None, text="g/L"))
    assert read(no_system).facts == {"hemoglobin": 9.5}
    other_system = obs("b", "718-7", valueQuantity=quantity(95, "GM/L", system="http://local", text="g/L"))
    assert read(other_system).facts == {"hemoglobin": 9.5}
    no_unit = obs("c", "718-7", valueQuantity={"value": 9.5})
    assert "Observation/c (LOINC 718-7 -> hemoglobin): valueQuantity has no unit" in rejected(no_unit)


def test_unknown_unit_names_resource_code_and_fact(rejected) -> None:
    message = rejected(bundle(obs("wbc-7", "6690-2", 1500, "cells/uL"), obs("hb-2", "718-7", 9, "g/dl")))
    assert "Observation/wbc-7 (LOINC 6690-2 -> wbc): unit 'cells/uL' is not accepted" in message
    assert "Observation/hb-2 (LOINC 718-7 -> hemoglobin): unit 'g/dl' is not accepted (did you mean 'g/dL'?)" in message
    assert "accepted units: 10*9/L, 10*3/uL, /uL, 10*6/L" in message


def test_out_of_range_value_is_rejected(rejected) -> None:
    message = rejected(bundle(obs("t", "8310-5", 130, "[degF]"), obs("a", "751-8", 150, "10*9/L")))
    assert "Observation/t (LOINC 8310-5 -> temperature): 54.4444444444 Cel (130 [degF]) is outside the plausible " \
           "range 25–45 Cel" in message
    assert "Observation/a (LOINC 751-8 -> anc): 150 10*9/L is outside the plausible range 0–100 10*9/L" in message


def test_only_the_selected_value_is_checked(read) -> None:
    # A superseded value in an unknown unit does not matter: it is not the most recent.
    got = read(bundle(obs("old", "751-8", 900, "cells/mm3", "2024-05-01T08:00:00Z"), obs("new", "751-8", 0.3, "10*9/L")))
    assert got.facts == {"anc": 0.3}


def test_a_bound_is_not_a_measurement(rejected) -> None:
    below = obs("a", "751-8", valueQuantity={**quantity(0.1, "10*9/L"), "comparator": "<"})
    assert "Observation/a (LOINC 751-8 -> anc): the value is '< 0.1', a bound, not a measured value" in rejected(below)


def test_a_value_that_is_not_a_quantity_is_rejected(rejected) -> None:
    text = obs("a", "751-8", valueString="<0.1")
    assert "Observation/a (LOINC 751-8 -> anc): valueString cannot be read as number; expected valueQuantity" in \
        rejected(text)


def test_every_problem_is_reported_at_once(rejected) -> None:
    message = rejected(bundle(obs("a", "751-8", 0.3, "cells"), obs("t", "8310-5", 60, "Cel"),
                              obs("x", "718-7", 9, "g/dL", status="done")), extra={"anc_typo": 1})
    assert len(message.splitlines()) == 4, message


# --- the patient --------------------------------------------------------------------------------

def test_observations_about_another_patient_are_rejected(rejected) -> None:
    other = obs("b", "6690-2", 1.8, "10*9/L")
    other["subject"] = {"reference": "Patient/p2"}
    message = rejected(bundle(patient(), obs("a", "751-8", 0.3, "10*9/L"), other))
    assert "the resources are about more than one subject" in message
    assert "Patient/p1 (Observation/a, Patient/p1)" in message and "Patient/p2 (Observation/b)" in message


def test_references_by_full_url_and_absolute_url_resolve_to_the_patient(read) -> None:
    a = obs("a", "751-8", 0.3, "10*9/L", subject={"reference": "urn:uuid:p1"})
    b = obs("b", "6690-2", 1.8, "10*9/L", subject={"reference": "https://fhir.example.org/r4/Patient/p1/_history/2"})
    got = read(bundle(patient(), a, b, full_urls=True))
    assert got.facts == {"anc": 0.3, "wbc": 1.8, "age": 53}


def test_two_patients_are_rejected(rejected) -> None:
    assert "2 Patient resources (Patient/p1, Patient/p2): the input must be about one patient" in \
        rejected(bundle(patient(), patient(rid="p2")))


# --- input shapes -------------------------------------------------------------------------------

def test_a_list_of_resources_and_a_single_resource(read) -> None:
    resources = [patient(), obs("a", "751-8", 0.3, "10*9/L")]
    assert read(resources).facts == read(bundle(*resources)).facts == {"anc": 0.3, "age": 53}
    assert read(obs("a", "751-8", 0.3, "10*9/L")).facts == {"anc": 0.3}
    assert read(patient()).facts == {"age": 53}
    assert read([]).facts == {} and read(bundle()).facts == {}


@pytest.mark.parametrize(("source", "fragment"), [
    ("not a bundle", "FHIR input must be a Bundle, a resource or a list of resources, not str"),
    ({"id": "x"}, "resource: no resourceType"),
    ({"resourceType": "Patinet", "id": "p1"}, "resource: unknown resourceType 'Patinet' (did you mean 'Patient'?)"),
    ([patient(), {"resourceType": "Observatoin"}], ("[1]: unknown resourceType 'Observatoin' (did you mean "
                                                   "'Observation'?)")),
    ([patient(), 7], "[1]: a resource is a JSON object, not int"),
    (obs("a", "751-8", 0.3, "10*9/L", "yesterday"),
     "resource Observation/a: effectiveDateTime: DateTime value string does not match spec regex (got 'yesterday')"),
    (obs("a", "751-8", valueQuantity={"value": "0,3", "code": "10*9/L", "system": UCUM}),
     "resource Observation/a: valueQuantity.value: Decimal value string does not match spec regex (got '0,3')"),
    (obs("a", "751-8", 0.3, "10*9/L", valueQuantiy={"value": 1}), ("resource Observation/a: valueQuantiy: unknown "
                                                                 "element")),
    ({"resourceType": "Observation", "id": "a", "status": "final"}, "resource Observation/a: code: Field required"),
    (patient("15/06/1970"), "resource Patient/p1: birthDate: Date value string does not match spec regex"),
    ({"resourceType": "Bundle", "entry": []}, "Bundle: type: Value for the field 'type' is required"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Observation"}}]},
     "Observation at entry[0]: code: Field required"),
    (bundle(patient(), bundle()), "Bundle at entry[1]: a Bundle inside the input is not read"),
    (obs("a", "751-8", 0.3, "10*9/L", contained=[{"resourceType": "Foo", "id": "f"}]),
     "resource Observation/a: unknown resource type"),
])
def test_malformed_input_is_rejected_naming_the_problem(rejected, source: Any, fragment: str) -> None:
    assert fragment in rejected(source)


def test_problems_name_the_entry_and_the_resource(rejected) -> None:
    b = bundle(patient(), obs("a", "751-8", 0.3, "10*9/L"), obs("b", "6690-2", 1.8, "10*9/L", "2024-13-01"))
    assert rejected(b).startswith("entry[2] Observation/b: effectiveDateTime:")


# --- extra facts --------------------------------------------------------------------------------

def test_extra_facts_are_merged_and_canonical(read) -> None:
    got = read(bundle(obs("a", "751-8", 0.3, "10*9/L")),
               extra={"copd": False, "expected_neutropenia_days": 10,
                      "temperature": {"value": 101.3, "unit": "[degF]"}, "age": None})
    assert got.facts == {"anc": 0.3, "temperature": 38.5, "expected_neutropenia_days": 10, "copd": False}
    assert got.sources["copd"] == ("extra facts",)


def test_a_fact_given_both_ways_is_an_error(rejected) -> None:
    message = rejected(bundle(patient(), obs("a", "751-8", 0.3, "10*9/L")), extra={"anc": 0.3, "age": 50})
    assert "anc: given in the extra facts and read from FHIR (Observation/a at 2024-05-03T08:00:00Z); give it one way " \
           "only" in message
    assert "age: given in the extra facts and read from FHIR (Patient/p1 birthDate 1970-06-15)" in message


def test_a_null_extra_fact_is_not_a_conflict(read) -> None:
    assert read(obs("a", "751-8", 0.3, "10*9/L"), extra={"anc": None}).facts == {"anc": 0.3}


def test_bad_extra_facts_are_reported_with_the_fhir_problems(rejected) -> None:
    message = rejected(obs("a", "751-8", 0.3, "furlongs"), extra={"copd": "no", "symptom_burdn": "mild"})
    assert "extra facts: copd: expected true or false" in message
    assert "extra facts: symptom_burdn: unknown fact (did you mean 'symptom_burden'?)" in message
    assert "unit 'furlongs' is not accepted" in message
    assert "extra facts: patient facts must be a JSON object" in rejected(bundle(), extra=[1])


def test_the_facts_evaluate(guideline: engine.Guideline) -> None:
    facts = engine.facts_from_fhir(bundle(obs("a", "751-8", 0.3, "10*9/L"), obs("t", "8310-5", 101.3, "[degF]")),
                                   guideline, as_of=AS_OF)
    result = guideline.evaluate(facts)
    assert result.derived["febrile_neutropenia"] is True
    assert "fn-empirical-iv-antibiotics" in result.codes


def test_import_engine_does_not_import_the_fhir_library() -> None:
    code = "import sys, engine; print(sorted(m for m in sys.modules if m.startswith('fhir')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stdout + proc.stderr


# --- the examples -------------------------------------------------------------------------------

def load_example(name: str) -> tuple[Any, Any]:
    return (json.loads((EXAMPLES / "fhir" / f"{name}.json").read_text(encoding="utf-8")),
            json.loads((EXAMPLES / "fhir" / f"{name}-extra.json").read_text(encoding="utf-8")))


def test_there_are_fhir_examples() -> None:
    assert set(FHIR_EXAMPLES) >= {"febrile-neutropenia-low-risk", "febrile-neutropenia-high-risk",
                                  "afebrile-prophylaxis", "incomplete-data", "units"}


@pytest.mark.parametrize("name", FHIR_EXAMPLES)
def test_fhir_example_gives_the_facts_of_the_plain_example(guideline: engine.Guideline, name: str) -> None:
    source, extra = load_example(name)
    facts = engine.facts_from_fhir(source, guideline, extra=extra, as_of=AS_OF)
    plain, _ = check_facts(guideline.content, json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8")))
    assert facts == plain
    from_fhir, from_plain = guideline.evaluate(facts), guideline.evaluate(plain)
    assert from_fhir.codes == from_plain.codes
    assert [m.fact for m in from_fhir.missing] == [m.fact for m in from_plain.missing]


@pytest.mark.parametrize("name", FHIR_EXAMPLES)
def test_fhir_examples_show_every_selection_rule_somewhere(read, name: str) -> None:
    source, extra = load_example(name)
    statuses = {e["resource"].get("status") for e in source["entry"]}
    assert source["type"] == "collection" and "final" in statuses
    assert read(source, extra=extra).facts


def test_fhir_examples_together_cover_the_selection_rules(read) -> None:
    notes = " ".join(n for name in FHIR_EXAMPLES for n in read(load_example(name)[0]).notes)
    for fragment in ("status preliminary", "status entered-in-error", "status cancelled", "status registered",
                     "no value (dataAbsentReason", "has no birthDate"):
        assert fragment in notes, fragment
    codes = {c["code"] for name in FHIR_EXAMPLES for e in load_example(name)[0]["entry"]
             for c in e["resource"].get("code", {}).get("coding", [])}
    assert codes >= {"751-8", "753-4", "26499-4", "6690-2", "26464-8", "770-8", "764-1", "26508-2", "731-0",
                     "26474-7", "718-7", "8310-5", "8480-6", "85354-9", "55284-4"}


@pytest.mark.parametrize("name", FHIR_EXAMPLES)
def test_cli_evaluates_every_fhir_example(fast_cli: None, guideline: engine.Guideline, name: str) -> None:
    source = EXAMPLES / "fhir" / f"{name}.json"
    code, out, err = run_cli("evaluate", "--fhir", str(source), "--facts", str(source.with_name(f"{name}-extra.json")),
                             "--as-of", AS_OF, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    plain = guideline.evaluate(json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8")))
    assert [r["code"] for r in document["recommendations"]] == plain.codes
    assert err.startswith("note: read ")
    # without the extra facts too (fewer facts, more missing, still evaluated)
    code, out, err = run_cli("evaluate", "--fhir", str(source), "--as-of", AS_OF, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["guideline"]["id"] == "neutropenia"


def test_cli_text_output_and_notes(fast_cli: None) -> None:
    name = "febrile-neutropenia-low-risk"
    code, out, err = run_cli("evaluate", "--fhir", str(EXAMPLES / "fhir" / f"{name}.json"), "--as-of", AS_OF)
    assert code == 0
    assert "IMMEDIATE" in out
    assert "note: skipped Observation/hgb-0503-b (718-7 hemoglobin): status entered-in-error" in err
    assert "note: skipped Observation/anc-0503-manual (753-4 anc): status preliminary" in err
    code, out, _ = run_cli("evaluate", "--fhir", str(EXAMPLES / "fhir" / f"{name}.json"), "--as-of", AS_OF,
                           "--include-preliminary", "--format", "json")
    assert code == 0 and json.loads(out)["derived"]["anc"] == 0.2


def test_cli_reads_the_bundle_from_stdin(fast_cli: None) -> None:
    code, out, _ = run_cli("evaluate", "--fhir", "-", "--as-of", AS_OF, "--format", "json",
                           stdin=json.dumps(bundle(obs("a", "751-8", 0.3, "10*9/L"))))
    assert code == 0 and json.loads(out)["derived"]["neutropenia_grade"] == "severe"


@pytest.mark.parametrize(("argv", "fragment"), [
    (["evaluate"], "give exactly one of FILE or --fhir BUNDLE"),
    (["evaluate", "examples/units.json", "--fhir", "examples/fhir/units.json"], "give exactly one of FILE or --fhir"),
    (["evaluate", "examples/units.json", "--facts", "x.json"], "go with --fhir"),
    (["evaluate", "examples/units.json", "--include-preliminary"], "go with --fhir"),
    (["evaluate", "--fhir", "examples/fhir/units.json", "--as-of", "03.05.2024"], "is not a date YYYY-MM-DD"),
    (["evaluate", "--fhir", "examples/fhir/units.json", "--as-of", "2024-02-30"], "day is out of range"),
])
def test_cli_usage_errors_exit_2(fast_cli: None, capsys: pytest.CaptureFixture[str], argv: list[str],
                                 fragment: str) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert fragment in err + capsys.readouterr().err


def test_cli_malformed_bundles_exit_2(fast_cli: None, tmp_path: Path) -> None:
    def run(text: str, *more: str) -> tuple[int, str]:
        path = tmp_path / "bundle.json"
        path.write_text(text, encoding="utf-8")
        code, out, err = run_cli("evaluate", "--fhir", str(path), "--as-of", AS_OF, *more)
        assert out == ""
        return code, err

    assert run('{"resourceType": "Bundle", ') == (2, (f"error: {tmp_path / 'bundle.json'}:1:28: malformed JSON: "
                                                    "Expecting property name enclosed in double quotes\n"))
    code, err = run(json.dumps({"resourceType": "Bundel", "type": "collection"}))
    assert code == 2 and "unknown resourceType 'Bundel' (did you mean 'Bundle'?)" in err
    code, err = run(json.dumps(bundle(obs("a", "751-8", 0.3, "10*9/L", "3 May"))))
    assert code == 2 and "entry[0] Observation/a: effectiveDateTime: DateTime value string does not match" in err
    code, err = run(json.dumps(bundle(obs("a", "751-8", 0.3, "cells"))))
    assert code == 2 and "error: Observation/a (LOINC 751-8 -> anc): unit 'cells' is not accepted" in err
    good = json.dumps(bundle(obs("a", "751-8", 0.3, "10*9/L")))
    (tmp_path / "extra.json").write_text('{"anc": 0.4}', encoding="utf-8")
    code, err = run(good, "--facts", str(tmp_path / "extra.json"))
    assert code == 2 and "anc: given in the extra facts and read from FHIR" in err
    code, err = run(good, "--facts", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_cli_fhir_with_audit_log(fast_cli: None, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    code, _out, err = run_cli("evaluate", "--fhir", str(EXAMPLES / "fhir" / "incomplete-data.json"), "--as-of", AS_OF,
                             "--audit-log", str(log), "--format", "json")
    assert code == 0, err
    assert log.read_text(encoding="utf-8").count("\n") == 1


def test_cli_fhir_in_a_real_process() -> None:
    script = Path(sys.executable).with_name("guideline")
    name = "units"
    proc = subprocess.run([str(script), "evaluate", "--fhir", f"examples/fhir/{name}.json", "--facts",
                           f"examples/fhir/{name}-extra.json", "--as-of", AS_OF, "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["derived"]["anc"] == 0.3


def test_examples_are_not_modified_by_reading(read) -> None:
    source, extra = load_example("units")
    before = copy.deepcopy((source, extra))
    read(source, extra=extra)
    assert (source, extra) == before


def test_temperature_is_the_highest_reading_of_the_last_24_hours(read) -> None:
    """The dictionary defines temperature as the highest reading: a settled fever still counts."""
    facts = read(bundle(patient(), obs("t1", "8310-5", 38.9, "Cel", "2024-05-02T20:00:00Z"),
                        obs("t2", "8310-5", 37.1, "Cel", "2024-05-03T08:00:00Z"),
                        obs("t0", "8310-5", 39.5, "Cel", "2024-05-01T06:00:00Z"))).facts
    assert facts["temperature"] == 38.9  # 39.5 is more than 24 h before the latest reading


def test_systolic_bp_is_the_lowest_reading_of_the_last_24_hours(read) -> None:
    facts = read(bundle(patient(), panel("bp1", "85354-9", 84, "2024-05-03T02:00:00Z"),
                        obs("bp2", "8480-6", 118, "mm[Hg]", "2024-05-03T08:00:00Z"))).facts
    assert facts["systolic_bp"] == 84


def test_the_latest_value_is_used_for_counts(read) -> None:
    facts = read(bundle(patient(), obs("a1", "751-8", 0.3, "10*9/L", "2024-05-02T08:00:00Z"),
                        obs("a2", "751-8", 0.8, "10*9/L", "2024-05-03T08:00:00Z"))).facts
    assert facts["anc"] == 0.8


def test_an_invalid_reading_inside_the_window_is_rejected(rejected) -> None:
    message = rejected(bundle(patient(), obs("t1", "8310-5", 38.9, "mg", "2024-05-02T20:00:00Z"),
                              obs("t2", "8310-5", 37.1, "Cel", "2024-05-03T08:00:00Z")))
    assert "Observation/t1" in message and "mg" in message
