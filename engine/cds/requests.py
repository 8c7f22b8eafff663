"""A hook call's body parsed and checked against the service: context, prefetch and our extension.

Facts come from the prefetch (a Patient read and an Observation search) plus, for what FHIR does
not carry, the request extension named after the guideline id:
`"extension": {"<guideline id>": {"facts": {...}, "asOf": "2024-05-03"}}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from engine.cds.discovery import PREFETCH_OBSERVATIONS, PREFETCH_PATIENT, Service
from engine.errors import BadInputError
from engine.fhir.dates import date_or_zoned
from engine.run.why_not import MAX_WHY_NOT_CODES

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_EXTENSION_KEYS = frozenset({"facts", "asOf", "why_not"})
MAX_EXTENSION_FACTS = 256   # a guideline's facts dictionary has tens; each unknown name costs a did-you-mean
MAX_PROBLEMS = 50           # an error body lists the first problems, then how many more there were
_MAX_PROBLEM_CHARS = 500


class RequestError(BadInputError):
    """A request the service cannot answer with cards; `http_status` is the HTTP status it answers.

    The message and `problems` are what the client must fix, sent as the JSON error body.
    """

    def __init__(self, http_status: int, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.problems = problems or []

    def body(self) -> dict[str, Any]:
        """The JSON error body: at most MAX_PROBLEMS problems, each cut to a readable length."""
        shown = [p if len(p) <= _MAX_PROBLEM_CHARS else p[:_MAX_PROBLEM_CHARS - 1] + "…"
                 for p in self.problems[:MAX_PROBLEMS]]
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS} more problem(s)")
        return {"error": str(self), **({"problems": shown} if shown else {})}


@dataclass(frozen=True)
class HookCall:
    hook_instance: str
    patient_id: str
    patient: dict[str, Any] | None
    observations: dict[str, Any] | None
    facts: dict[str, Any] | None
    as_of: date | datetime
    absent: tuple[str, ...] = ()         # prefetch keys not given: to fetch from fhirServer
    paged: bool = False                  # prefetch.observations has a `next` link: fetch the other pages
    fhir_server: Any = None              # the request's fhirServer and fhirAuthorization, as sent
    fhir_authorization: Any = None
    notes: tuple[str, ...] = ()          # what was fetched
    why_not: tuple[str, ...] = ()        # codes a tool asks why-not for (contract section 8)


def _object(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None and not required and key not in data:
        return None
    if not isinstance(value, dict):
        raise RequestError(400, f"{where}{key}: {'missing' if key not in data else 'expected a JSON object'}")
    return value


def _as_of(text: Any, where: str) -> date | datetime:
    moment = date_or_zoned(text)
    if moment is None:
        raise RequestError(400, f"{where}: {str(text)[:40]!r} is not a date YYYY-MM-DD or a date-time with a "
                           "UTC offset (2024-05-03T12:00:00Z)")
    return moment


def _why_not(ours: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """`extension.<guideline id>.why_not`: a bounded list of code strings (the engine checks the codes)."""
    codes = ours.get("why_not", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise RequestError(400, f"extension.{name}.why_not: expected a list of recommendation codes (strings)")
    if len(codes) > MAX_WHY_NOT_CODES:
        raise RequestError(400, f"extension.{name}.why_not: {len(codes)} codes; at most {MAX_WHY_NOT_CODES}")
    return tuple(codes)


def _extension(data: Mapping[str, Any], name: str) -> tuple[dict[str, Any] | None, date | datetime]:
    """(extra facts, as-of) from `extension.<guideline id>`; as-of defaults to now."""
    extension = _object(data, "extension", "", required=False) or {}
    ours = _object(extension, name, "extension.", required=False)
    if ours is None:
        return None, datetime.now(UTC)
    unknown = sorted(set(ours) - _EXTENSION_KEYS)
    if unknown:
        raise RequestError(400, f"extension.{name}: unknown key(s) {', '.join(unknown)}; "
                           f"allowed: {', '.join(sorted(_EXTENSION_KEYS))}")
    facts = _object(ours, "facts", f"extension.{name}.", required=False)
    if facts is not None and len(facts) > MAX_EXTENSION_FACTS:  # refused before any name is looked up
        raise RequestError(400, f"extension.{name}.facts: {len(facts)} facts given; at most {MAX_EXTENSION_FACTS}")
    as_of = _as_of(ours["asOf"], f"extension.{name}.asOf") if "asOf" in ours else datetime.now(UTC)
    return facts, as_of


def _prefetch(data: Mapping[str, Any], service: Service
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, tuple[str, ...], bool]:
    """(Patient or None, Observation search Bundle or None, absent keys, paged).

    Absent keys and a paged search are fetched later from fhirServer; without one, 412 now.
    """
    prefetch = _object(data, "prefetch", "", required=False) or {}
    absent = tuple(key for key in service.prefetch if key not in prefetch)
    patient, bundle = prefetch.get(PREFETCH_PATIENT), prefetch.get(PREFETCH_OBSERVATIONS)
    if patient is not None and (not isinstance(patient, dict) or patient.get("resourceType") != "Patient"):
        raise RequestError(400, "prefetch.patient: expected a Patient resource or null")
    if bundle is not None and (not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle"):
        raise RequestError(400, "prefetch.observations: expected a Bundle (searchset) or null")
    links = bundle.get("link") if bundle else None
    paged = isinstance(links, list) and any(isinstance(lk, dict) and lk.get("relation") == "next" for lk in links)
    if absent and not data.get("fhirServer"):
        raise RequestError(412, f"required prefetch {', '.join(absent)} not given, and no fhirServer to fetch it "
                           "from: send the prefetch of the discovery document (null where the EHR has no data), "
                           "or fhirServer (and fhirAuthorization)")
    if paged and not data.get("fhirServer"):
        raise RequestError(412, "prefetch.observations is one page of a paged search (it has a 'next' link), and "
                           "no fhirServer was given to fetch the other pages from: the prefetch must hold every "
                           "result")
    return patient, bundle, absent, paged


def parse_hook_call(data: Any, service: Service, guideline_id: str) -> HookCall:
    """A hook request checked against the service (400, or 412 for a missing prefetch)."""
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    hook = data.get("hook")
    if hook != service.hook:
        raise RequestError(400, f"hook: this service answers '{service.hook}', not {hook!r}" if hook else
                           "hook: missing")
    instance = data.get("hookInstance")
    if not isinstance(instance, str) or not instance.strip() or len(instance) > 256:
        raise RequestError(400, "hookInstance: missing (a UUID identifying this hook call)")
    context = _object(data, "context", "")
    assert context is not None
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not _FHIR_ID.fullmatch(patient_id):
        raise RequestError(400, "context.patientId: missing or not a FHIR id" if patient_id else
                           "context.patientId: missing")
    if data.get("fhirAuthorization") is not None and not data.get("fhirServer"):
        raise RequestError(400, "fhirAuthorization is given without fhirServer")
    facts, as_of = _extension(data, guideline_id)
    patient, observations, absent, paged = _prefetch(data, service)
    if patient is not None and patient.get("id") != patient_id:
        raise RequestError(400, f"prefetch.patient is Patient/{patient.get('id')}, but context.patientId is "
                           f"{patient_id}: the data is about another patient")
    ours = (data.get("extension") or {}).get(guideline_id)  # checked to be an object by _extension
    return HookCall(instance, patient_id, patient, observations, facts, as_of, absent, paged,
                    data.get("fhirServer"), data.get("fhirAuthorization"),
                    why_not=_why_not(ours, guideline_id) if ours else ())
