"""Synthetic patients for cohort tests and benchmarks: N patients as NDJSON and as a FHIR Bulk Data export.

Run: python benchmarks/synth.py N OUTDIR [--seed S] [--as-of YYYY-MM-DD] [--guideline DIR]
Writes OUTDIR/patients.ndjson ({"id", "facts"} per line) and OUTDIR/bulk/ (Patient.ndjson,
Observation.ndjson: LOINC codes and UCUM units from the guideline's facts dictionary) with
OUTDIR/bulk-extra.ndjson for the facts FHIR does not carry, so both inputs describe the same
patients and `guideline cohort` must give the same rows for both.

Everything is read from the guideline (facts, types, units, plausible ranges, thresholds): values
cluster around the thresholds the rules test, some facts are left out (missing data, as in real
records), and an older reading of each laboratory value is written as well (the reader must take
the latest, or the highest temperature of the episode). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import engine
from engine.cohort.summary import _thresholds
from engine.model.content import Content, FactSpec

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
PRESENT = 0.75   # chance that a fact is known for a patient


def _number(spec: FactSpec, cuts: list[float], rnd: random.Random) -> float:
    """Near a threshold the rules test (where decisions change), within the plausible range."""
    low, high = spec.range or (0.0, 100.0)
    if not cuts:
        value = rnd.uniform(low, low + (high - low) / 10)
    else:
        cut = rnd.choice(cuts)
        spread = min(abs(cut) * 0.5, (high - low) / 10) if cut else (high - low) / 20
        value = cut + rnd.uniform(-spread, spread) * (2 if rnd.random() < 0.2 else 1)
    value = min(max(value, low), high)
    return round(value) if spec.unit in ("a", "d", "h") else round(value, 2)


def patient_facts(content: Content, rnd: random.Random) -> dict[str, Any]:
    cuts = _thresholds(content)
    facts: dict[str, Any] = {}
    for name, spec in content.facts.items():
        if rnd.random() > PRESENT:
            continue
        if spec.type == "number":
            facts[name] = _number(spec, sorted(cuts.get(name, [])), rnd)
        elif spec.type == "boolean":
            facts[name] = rnd.random() < 0.3
        else:
            facts[name] = rnd.choice(spec.values)
    return facts


def patients(n: int, seed: int, content: Content) -> Iterator[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    for i in range(n):
        yield f"p{i:07d}", patient_facts(content, rnd)


def _observation(oid: str, pid: str, spec: FactSpec, value: Any, when: datetime) -> dict[str, Any]:
    obs: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                           "code": {"coding": [{"system": LOINC, "code": spec.loinc[0]}]},
                           "subject": {"reference": f"Patient/{pid}"},
                           "effectiveDateTime": when.isoformat().replace("+00:00", "Z")}
    if spec.type == "boolean":
        obs["valueBoolean"] = value
    else:
        obs["valueQuantity"] = {"value": value, "unit": spec.unit, "system": UCUM, "code": spec.unit}
    return obs


def fhir(pid: str, facts: dict[str, Any], content: Content, as_of: date,
         rnd: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(Patient, Observations, extra facts) that read back as exactly `facts` on `as_of`."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": rnd.choice(["female", "male"])}
    observations: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    taken = datetime.combine(as_of, time(6, 0), timezone.utc) - timedelta(hours=rnd.randint(0, 12))
    for name, value in facts.items():
        spec = content.facts[name]
        if spec.fhir_patient == "birthDate":
            patient["birthDate"] = date(as_of.year - int(value), 1, 1).isoformat()  # completed years on as_of
        elif spec.loinc:
            observations.append(_observation(f"{pid}-{name.replace('_', '-')}", pid, spec, value, taken))
            if spec.type == "number" and spec.fhir_select == "latest":  # an older, different reading
                older = round(value * 0.9, 2) if spec.unit not in ("a", "d", "h") else value
                observations.append(_observation(f"{pid}-{name.replace('_', '-')}-old", pid, spec, older, taken - timedelta(days=9)))
            elif spec.type == "number":  # highest / lowest of the episode: a milder reading beside it
                milder = value - 0.5 if spec.fhir_select == "highest" else value + 5
                low, high = spec.range or (milder, milder)
                if low <= milder <= high:
                    observations.append(_observation(f"{pid}-{name.replace('_', '-')}-2", pid, spec, milder, taken - timedelta(hours=3)))
        else:
            extra[name] = value
    return patient, observations, extra


def write(n: int, out: Path, seed: int = 1, as_of: date = date(2026, 6, 1), guideline: Path | None = None) -> None:
    content = engine.load(guideline).content
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk").mkdir(exist_ok=True)
    rnd = random.Random(seed + 1)
    with (out / "patients.ndjson").open("w", encoding="utf-8") as flat, \
            (out / "bulk" / "Patient.ndjson").open("w", encoding="utf-8") as pat, \
            (out / "bulk" / "Observation.ndjson").open("w", encoding="utf-8") as obs, \
            (out / "bulk-extra.ndjson").open("w", encoding="utf-8") as extra_file:
        for pid, facts in patients(n, seed, content):
            flat.write(json.dumps({"id": pid, "facts": facts}) + "\n")
            patient, observations, extra = fhir(pid, facts, content, as_of, rnd)
            pat.write(json.dumps(patient) + "\n")
            obs.writelines(json.dumps(o) + "\n" for o in observations)
            if extra:
                extra_file.write(json.dumps({"id": pid, "facts": extra}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 6, 1))
    parser.add_argument("--guideline", type=Path)
    args = parser.parse_args()
    write(args.n, args.out, args.seed, args.as_of, args.guideline)


if __name__ == "__main__":
    main()
