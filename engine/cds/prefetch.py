"""A hook call's prefetch made whole: absent keys fetched from fhirServer, joined into one Bundle for the reader.

A prefetch key that is absent (or an Observation page with a `next` link) is fetched from the
request's fhirServer with the template's own query (engine/cds/fhir_fetch.py); when the data
cannot be obtained from it, the service answers 412. The reader's problems about the joined
Bundle are renamed after the parts of the request they came from.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any

from engine.cds.discovery import (
    PREFETCH_OBSERVATIONS,
    PREFETCH_PATIENT,
    Service,
    fill_template,
)
from engine.cds.fhir_fetch import FetchError, FetchOptions, FhirSession, fhir_server
from engine.cds.requests import HookCall, RequestError

_log = logging.getLogger("engine.cds")
# The reader validates every entry (~20-60 µs each): 1 MiB of `{},` would be 350,000 of them and
# seconds of CPU. A real Observation is over 250 bytes, so a 1 MiB body holds about 4,000 at most.
MAX_ENTRIES = 10_000


def fetch_missing(call: HookCall, service: Service, options: FetchOptions) -> HookCall:
    """The call with its absent prefetch (and the other pages of a paged one) fetched from fhirServer.

    The queries are the service's prefetch templates, filled in for the patient. Whatever cannot
    be obtained answers 412 with the reason; nothing is guessed or left out.
    """
    wanted = [*call.absent, *([f"the other pages of {PREFETCH_OBSERVATIONS}"] if call.paged else [])]
    try:
        server = fhir_server(call.fhir_server, call.fhir_authorization, options.allow_http)
    except FetchError as exc:
        raise RequestError(412, f"required prefetch {', '.join(wanted)} not given, and fhirServer cannot be used: "
                           f"{exc}") from None
    session = FhirSession(server, options)
    patient, observations, notes = call.patient, call.observations, []
    key = ""
    try:
        if PREFETCH_PATIENT in call.absent:
            key = PREFETCH_PATIENT
            request = fill_template(service.prefetch[PREFETCH_PATIENT], call.patient_id)
            patient = session.read(request, "Patient", f"fhirServer has no Patient/{call.patient_id} (GET {request} "
                                   "answered 404): there is no such patient on that server")
            if patient.get("id") != call.patient_id:
                raise FetchError(f"GET {request}: fhirServer answered Patient/{str(patient.get('id'))[:64]}, "
                                 "another patient")
            notes.append(f"prefetch.patient fetched from fhirServer (GET {request})")
        if PREFETCH_OBSERVATIONS in call.absent:
            key = PREFETCH_OBSERVATIONS
            observations, pages = session.search(fill_template(service.prefetch[PREFETCH_OBSERVATIONS],
                                                               call.patient_id))
            notes.append(f"prefetch.observations fetched from fhirServer: {len(observations['entry'])} entries in "
                         f"{pages} page(s)")
        elif call.paged and observations is not None:
            key = f"the other pages of {PREFETCH_OBSERVATIONS}"
            given = len(observations.get("entry") or [])
            observations, pages = session.search(None, first_page=observations)
            notes.append(f"prefetch.observations was paged: {len(observations['entry']) - given} more entries "
                         f"fetched from fhirServer in {pages} page(s)")
    except FetchError as exc:
        raise RequestError(412, f"prefetch {key} could not be obtained from fhirServer: {exc}") from None
    finally:
        session.close()
        _log.info("fhirServer %s: %d request(s), %d bytes, %.0f ms", server.base, session.requests, session.received,
                  1000 * (time.monotonic() - session.started))
    return dataclasses.replace(call, patient=patient, observations=observations, absent=(), paged=False,
                               notes=tuple(notes))


def fhir_source(call: HookCall) -> tuple[dict[str, Any], int]:
    """One Bundle: the searchset's entries, then the Patient (index returned) so entry[i] keeps its number.

    With a null Patient, a bare Patient of context.patientId stands in, so the engine still checks
    that every Observation is about that patient.
    """
    bundle = dict(call.observations or {"resourceType": "Bundle", "type": "searchset"})
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise RequestError(400, "prefetch.observations: entry must be an array")
    if len(entries) > MAX_ENTRIES:  # fetched from fhirServer (412) or sent (400): refused before reading any
        raise RequestError(412 if call.notes else 400, f"prefetch.observations: {len(entries)} entries; at most "
                           f"{MAX_ENTRIES} per hook call")
    patient = call.patient or {"resourceType": "Patient", "id": call.patient_id}
    bundle["entry"] = [*entries, {"resource": patient}]
    return bundle, len(entries)


def located(problems: list[str], patient_index: int, guideline_id: str) -> list[str]:
    """Engine messages about the joined Bundle, renamed after the parts of the request."""
    def entry(match: re.Match[str]) -> str:
        i = int(match[1])
        return "prefetch.patient" if i == patient_index else f"prefetch.observations entry[{i}]"

    out = []
    for problem in problems:
        problem = re.sub(r"\bentry\[(\d+)\]", entry, problem)
        problem = re.sub(r"^Bundle: ", "prefetch.observations: ", problem)
        out.append(re.sub(r"^extra facts: ", f"extension.{guideline_id}.facts: ", problem))
    return out
