"""The services a guideline offers (one per hook) and their prefetch templates, read from the facts dictionary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.fhir.mapping import LOINC
from engine.guideline import Guideline
from engine.model.content import Content

HOOKS = ("patient-view", "order-select")
PREFETCH_PATIENT, PREFETCH_OBSERVATIONS = "patient", "observations"
PATIENT_TOKEN = "{{context.patientId}}"


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]

    def discovery(self) -> dict[str, Any]:
        """The service's entry in the discovery document (GET /cds-services)."""
        return {"id": self.id, "hook": self.hook, "title": self.title, "description": self.description,
                "prefetch": dict(self.prefetch)}


def prefetch_templates(content: Content) -> dict[str, str]:
    """Patient read + Observation search for every LOINC code (and panel code) of the facts dictionary."""
    codes: list[str] = []
    for spec in content.facts.values():
        for code in (*spec.loinc, *spec.fhir_component_of):
            if code not in codes:
                codes.append(code)
    templates = {PREFETCH_PATIENT: f"Patient/{PATIENT_TOKEN}"}
    if codes:
        templates[PREFETCH_OBSERVATIONS] = (f"Observation?patient={PATIENT_TOKEN}&code="
                                            + ",".join(f"{LOINC}|{c}" for c in codes))
    return templates


def fill_template(template: str, patient_id: str) -> str:
    """The relative FHIR request of a prefetch template for this patient (the id is a checked FHIR id)."""
    request = template.replace(PATIENT_TOKEN, patient_id)
    if "{{" in request:
        raise ValueError(f"prefetch template {template!r} has a token other than {PATIENT_TOKEN}")
    return request


def services(guideline: Guideline) -> dict[str, Service]:
    """service id -> Service: one per hook, described from the guideline's metadata and digest."""
    meta = guideline.content.metadata
    prefetch = prefetch_templates(guideline.content)
    what = {"patient-view": "when a patient's chart is opened",
            "order-select": "when orders are being selected (the patient is assessed; draft orders are not read)"}
    return {f"{meta.id}-{hook}": Service(
        f"{meta.id}-{hook}", hook, f"{meta.title} ({hook})",
        f"{' '.join(meta.description.split())} Evaluated {what[hook]}; version {meta.version} ({meta.status}), "
        f"{guideline.digest}.", prefetch) for hook in HOOKS}
