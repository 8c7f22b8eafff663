"""Through CDS Hooks too, an imprecise reading never hides a fever (issue 9): the service reads
prefetched Observations with engine.fhir.reader.read_fhir, so the interval rule applies there."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import engine
from engine.cds.hooks import CdsCore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cds" / "patient-view-afebrile-prophylaxis.json"


def _temperature(rid: str, value: float, when: str) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{rid}", "resource": {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": "Patient/afebrile-0003"}, "effectiveDateTime": when,
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "Cel"}}}


def test_a_month_only_temperature_does_not_hide_a_fever_in_a_hook_call(guideline: engine.Guideline) -> None:
    request = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    entries = request["prefetch"]["observations"]["entry"]
    kept = [e for e in entries if e["resource"]["code"]["coding"][0]["code"] != "8310-5"]
    request["prefetch"]["observations"]["entry"] = [*kept, _temperature("t1", 39.5, "2024-05-02T10:00:00Z"),
                                                    _temperature("t2", 37.0, "2024-05")]
    core = CdsCore(guideline)
    service = core.service("neutropenia-patient-view")
    answer = core.call(service, json.dumps(request).encode(), "test")
    codes = [c["source"].get("topic", {}).get("code") for c in answer["cards"]]
    assert "afebrile-cause-evaluation" not in codes
    notes = answer["extension"][guideline.id]["notes"]
    assert any("temperature: 39.5 Cel (Observation/t1" in n and "may lie more than 24 h" in n for n in notes)
    # the same request with the fever alone gives the same cards: the month reading changes nothing
    alone = copy.deepcopy(request)
    alone["prefetch"]["observations"]["entry"] = alone["prefetch"]["observations"]["entry"][:-1]
    assert codes == [c["source"].get("topic", {}).get("code") for c in core.call(service, json.dumps(alone).encode(),
                                                                                    "test")["cards"]]
