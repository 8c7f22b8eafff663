"""Rebuild the CDS Hooks example requests in this folder from examples/fhir (tests check they are current).

    python examples/cds/build.py

Each FHIR example Bundle becomes a patient-view request whose prefetch is what an EHR would send
for the service's templates: the Patient (a read) and a searchset Bundle of the Observations with
the templates' codes, references written `Patient/<id>` as a FHIR server returns them. The facts
FHIR does not carry go in `extension.neutropenia.facts`; `asOf` pins the date the examples were
written for, so the cards are the same every day.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FHIR = ROOT / "examples" / "fhir"
NAMES = ("febrile-neutropenia-low-risk", "febrile-neutropenia-high-risk", "afebrile-prophylaxis",
         "incomplete-data", "units")
AS_OF = "2024-05-03"
SERVER = "https://fhir.example.org/r4"


def _codes(resource: dict[str, Any]) -> set[str]:
    return {c.get("code") for c in resource.get("code", {}).get("coding", []) if c.get("system") == "http://loinc.org"}


def prefetch(bundle: dict[str, Any], codes: set[str]) -> dict[str, Any]:
    """{patient, observations} as an EHR answers the service's prefetch templates for this Bundle."""
    patient_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient = patient_entry["resource"]
    own = {patient_entry.get("fullUrl"), f"Patient/{patient['id']}"}
    matches = []
    for entry in bundle["entry"]:
        obs = json.loads(json.dumps(entry["resource"]))
        if obs["resourceType"] != "Observation" or not _codes(obs) & codes:
            continue
        if obs.get("subject", {}).get("reference") in own:
            obs["subject"] = {"reference": f"Patient/{patient['id']}"}
        matches.append({"fullUrl": f"{SERVER}/Observation/{obs['id']}", "resource": obs, "search": {"mode": "match"}})
    return {"patient": patient,
            "observations": {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": matches}}


def hook_request(name: str, hook: str, codes: set[str]) -> dict[str, Any]:
    bundle = json.loads((FHIR / f"{name}.json").read_text(encoding="utf-8"))
    extra = json.loads((FHIR / f"{name}-extra.json").read_text(encoding="utf-8"))
    data = prefetch(bundle, codes)
    context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": data["patient"]["id"]}
    if hook == "order-select":
        order = {"resourceType": "MedicationRequest", "id": "draft-cefepime", "status": "draft", "intent": "order",
                 "medicationCodeableConcept": {"text": "cefepime 2 g IV every 8 hours"},
                 "subject": {"reference": f"Patient/{data['patient']['id']}"}}
        context |= {"selections": ["MedicationRequest/draft-cefepime"],
                    "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}}
    return {"hook": hook, "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"example:{hook}:{name}")),
            "context": context, "prefetch": data,
            "extension": {"neutropenia": {"facts": extra, "asOf": AS_OF}}}


def feedback(request: dict[str, Any]) -> dict[str, Any]:
    """Feedback on two cards of that request's answer: one overridden with a reason, one accepted."""
    sys.path.insert(0, str(ROOT))
    from engine.cds.cards import CardContext, card_uuid

    context = CardContext("neutropenia-patient-view", request["hookInstance"], request["context"]["patientId"])
    return {"feedback": [
        {"card": card_uuid(context, "fn-obtain-cultures"), "outcome": "overridden",
         "overrideReason": {"reason": {"system": "http://example.org/cds-services/override-reasons",
                                       "code": "already-done", "display": "Already done"},
                            "userComment": "Cultures were drawn in the emergency department."},
         "outcomeTimestamp": "2024-05-03T12:05:00Z"},
        {"card": card_uuid(context, "fn-empirical-iv-antibiotics"), "outcome": "accepted",
         "outcomeTimestamp": "2024-05-03T12:06:00Z"},
    ]}


def files() -> dict[str, dict[str, Any]]:
    """file name -> content of every example request."""
    sys.path.insert(0, str(ROOT))
    import engine
    from engine.cds.discovery import prefetch_templates

    template = prefetch_templates(engine.load().content)["observations"]
    codes = {c.split("|")[1] for c in template.split("code=")[1].split(",")}
    out = {f"patient-view-{name}.json": hook_request(name, "patient-view", codes) for name in NAMES}
    out["order-select-febrile-neutropenia-high-risk.json"] = hook_request(
        "febrile-neutropenia-high-risk", "order-select", codes)
    out["feedback.json"] = feedback(out["patient-view-febrile-neutropenia-high-risk.json"])
    return out


def text(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    for file, content in files().items():
        (HERE / file).write_text(text(content), encoding="utf-8")
        print(f"wrote examples/cds/{file}")
