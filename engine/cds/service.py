"""CDS Hooks 2.0 service for a guideline: discovery, patient-view / order-select calls, feedback (Starlette).

Facts come from the prefetch (a Patient read and an Observation search, templates built from the
facts dictionary's codes) plus, for what FHIR does not carry, the request extension named after the
guideline id: `"extension": {"<guideline id>": {"facts": {...}, "asOf": "2024-05-03"}}`.
A prefetch key that is absent (or an Observation page with a `next` link) is fetched from the
request's fhirServer with the template's own query (engine/_fhir_client.py); without fhirServer,
or when the data cannot be obtained from it, the service answers 412.

The synchronous core (`CdsCore`) parses, validates, evaluates and builds cards; the ASGI layer
authenticates, reads the body within its limit and runs the core in a worker thread, because
durable_rules holds the GIL and a Guideline evaluates one patient at a time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.cds import cards as _cards
from engine.cds import fhir_fetch as _fhir_client
from engine.cds.auth import (
    AuthError,
    Claims,
    TokenVerifier,
    audiences,
    describe,
    load_trusted_issuers,
)
from engine.cds.fhir_fetch import FetchError, FetchOptions, FhirSession
from engine.errors import EngineError, InputFactsError, RuleEngineError
from engine.fhir.mapping import LOINC
from engine.fhir.reader import read_fhir
from engine.guideline import Guideline, load
from engine.model.content import Content
from engine.products.audit import AuditLog, AuditLogError
from engine.run.json_input import no_duplicate_keys

HOOKS = ("patient-view", "order-select")
DEFAULT_MAX_BODY = 1 << 20   # 1 MiB: an example request is ~15 kB; a long Observation history needs more
PREFETCH_PATIENT, PREFETCH_OBSERVATIONS = "patient", "observations"
PATIENT_TOKEN = "{{context.patientId}}"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_EXTENSION_KEYS = frozenset({"facts", "asOf"})
_log = logging.getLogger("engine.cds")


class CdsConfigError(EngineError):
    """The service configuration is refused; nothing is started."""

    exit_code = 2


@dataclass(frozen=True)
class CdsConfig:
    guideline: Path | None = None        # None: the bundled guideline
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None        # base URL the EHR calls: `{public_url}/cds-services` is discovery
    trusted_issuers: Path | None = None  # JSON/YAML: iss -> keys (see engine/_cds_auth.py)
    dev_no_auth: bool = False            # local development only: no token checked (loopback host only)
    audit_log: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY  # also the most data fetched from fhirServer for one call
    allow_http_fhir: bool = False        # fetch from an http:// fhirServer (local tests only); https otherwise
    fhir_timeout: float = _fhir_client.DEFAULT_TIMEOUT  # seconds for all the FHIR requests of one hook call
    fhir_max_pages: int = _fhir_client.DEFAULT_MAX_PAGES

    def fetch_options(self) -> FetchOptions:
        return FetchOptions(self.fhir_timeout, self.max_body_bytes, self.fhir_max_pages, self.allow_http_fhir)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: CdsConfig) -> None:
    """Refuse a configuration that would run an unsafe or unusable service (CdsConfigError)."""
    if config.max_body_bytes <= 0:
        raise CdsConfigError("--max-body-bytes must be a positive number of bytes")
    if not 0 < config.fhir_timeout <= 60:
        raise CdsConfigError("the FHIR fetch timeout must be more than 0 and at most 60 seconds")
    if config.fhir_max_pages < 1:
        raise CdsConfigError("the FHIR search page limit must be at least 1")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise CdsConfigError(f"--public-url {config.public_url!r} is not an absolute http(s) base URL")
    if config.dev_no_auth:
        if not is_loopback(config.host):
            raise CdsConfigError(f"--dev-no-auth is for local development only and is refused on host "
                                 f"{config.host!r}: bind a loopback address (127.0.0.1, ::1 or localhost)")
        if config.trusted_issuers is not None:
            raise CdsConfigError("--dev-no-auth and --trusted-issuers exclude each other")
        return
    if config.trusted_issuers is None or config.public_url is None:
        raise CdsConfigError("give --trusted-issuers FILE and --public-url URL (the EHR's tokens are checked "
                             "against both), or --dev-no-auth on a loopback host for local development")


# --- discovery --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]

    def discovery(self) -> dict[str, Any]:
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
    meta = guideline.content.metadata
    prefetch = prefetch_templates(guideline.content)
    what = {"patient-view": "when a patient's chart is opened",
            "order-select": "when orders are being selected (the patient is assessed; draft orders are not read)"}
    return {f"{meta.id}-{hook}": Service(
        f"{meta.id}-{hook}", hook, f"{meta.title} ({hook})",
        f"{' '.join(meta.description.split())} Evaluated {what[hook]}; version {meta.version} ({meta.status}), "
        f"{guideline.digest}.", prefetch) for hook in HOOKS}


# --- requests ---------------------------------------------------------------------------------

class RequestError(Exception):
    """A request the service cannot answer with cards; `status` is the HTTP status."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems or []

    def body(self) -> dict[str, Any]:
        return {"error": str(self), **({"problems": self.problems} if self.problems else {})}


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, object_pairs_hook=no_duplicate_keys)
    except InputFactsError as exc:
        raise RequestError(400, "malformed JSON", [str(p) for p in exc.problems]) from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # not UTF-8/16/32
        raise RequestError(400, "malformed JSON: the body is not UTF-8 text") from None


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


def _object(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None and not required and key not in data:
        return None
    if not isinstance(value, dict):
        raise RequestError(400, f"{where}{key}: {'missing' if key not in data else 'expected a JSON object'}")
    return value


def _zoned(text: Any) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset, else None (a time without a zone is ambiguous)."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _as_of(text: Any, where: str) -> date | datetime:
    if isinstance(text, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    moment = _zoned(text)
    if moment is None:
        raise RequestError(400, f"{where}: {str(text)[:40]!r} is not a date YYYY-MM-DD or a date-time with a "
                           "UTC offset (2024-05-03T12:00:00Z)")
    return moment


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
    return HookCall(instance, patient_id, patient, observations, facts, as_of, absent, paged,
                    data.get("fhirServer"), data.get("fhirAuthorization"))


def fetch_missing(call: HookCall, service: Service, options: FetchOptions) -> HookCall:
    """The call with its absent prefetch (and the other pages of a paged one) fetched from fhirServer.

    The queries are the service's prefetch templates, filled in for the patient. Whatever cannot
    be obtained answers 412 with the reason; nothing is guessed or left out.
    """
    wanted = [*call.absent, *([f"the other pages of {PREFETCH_OBSERVATIONS}"] if call.paged else [])]
    try:
        server = _fhir_client.fhir_server(call.fhir_server, call.fhir_authorization, options.allow_http)
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
    patient = call.patient or {"resourceType": "Patient", "id": call.patient_id}
    bundle["entry"] = [*entries, {"resource": patient}]
    return bundle, len(entries)


def _located(problems: list[str], patient_index: int, guideline_id: str) -> list[str]:
    """Engine messages about the combined Bundle, renamed after the parts of the request."""
    def entry(match: re.Match[str]) -> str:
        i = int(match[1])
        return "prefetch.patient" if i == patient_index else f"prefetch.observations entry[{i}]"

    out = []
    for problem in problems:
        problem = re.sub(r"\bentry\[(\d+)\]", entry, problem)
        problem = re.sub(r"^Bundle: ", "prefetch.observations: ", problem)
        out.append(re.sub(r"^extra facts: ", f"extension.{guideline_id}.facts: ", problem))
    return out


# --- feedback ---------------------------------------------------------------------------------

def _coding(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and value[k] for k in ("code", "system")):
        problems.append(f"{where}: expected a Coding with code and system")
    elif set(value) - {"code", "system", "display", "extension"}:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(set(value) - {'code', 'system', 'display', 'extension'}))}")


def _one_feedback(item: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    allowed = {"card", "outcome", "acceptedSuggestions", "overrideReason", "outcomeTimestamp", "extension"}
    if not isinstance(item, dict):
        problems.append(f"{where}: expected a JSON object")
        return None
    before = len(problems)
    if set(item) - allowed:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(set(item) - allowed))}")
    try:
        card = str(uuid.UUID(item["card"])) if isinstance(item.get("card"), str) else None
    except ValueError:
        card = None
    if card is None:
        problems.append(f"{where}.card: expected the card's uuid")
    outcome = item.get("outcome")
    if outcome not in ("accepted", "overridden"):
        problems.append(f"{where}.outcome: expected 'accepted' or 'overridden'")
    stamp = item.get("outcomeTimestamp")
    if _zoned(stamp) is None:
        problems.append(f"{where}.outcomeTimestamp: expected an ISO 8601 date-time in UTC (2024-05-03T12:00:00Z)")
    suggestions = item.get("acceptedSuggestions", [])
    if not isinstance(suggestions, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str)
                                                    and s["id"] for s in suggestions):
        problems.append(f"{where}.acceptedSuggestions: expected an array of {{\"id\": \"…\"}}")
    reason = item.get("overrideReason", {})
    if "overrideReason" in item:
        if outcome != "overridden":
            problems.append(f"{where}.overrideReason: only with outcome 'overridden'")
        if not isinstance(reason, dict) or not reason or set(reason) - {"reason", "userComment"}:
            problems.append(f"{where}.overrideReason: expected an object with reason (a Coding) and/or userComment")
        else:
            if "reason" in reason:
                _coding(reason["reason"], f"{where}.overrideReason.reason", problems)
            comment = reason.get("userComment", "")
            if not isinstance(comment, str) or len(comment) > 2000:
                problems.append(f"{where}.overrideReason.userComment: expected text of at most 2000 characters")
    if len(problems) > before:
        return None
    return {"card": card, "outcome": outcome, "outcome_timestamp": stamp, "override_reason": reason,
            "accepted_suggestions": [s["id"] for s in suggestions]}


def parse_feedback(data: Any) -> list[dict[str, Any]]:
    """The feedback entries as audit-line fields; 400 listing every problem."""
    items = data.get("feedback") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise RequestError(400, "the body must be {\"feedback\": [...]} with at least one entry")
    if len(items) > 1000:
        raise RequestError(400, "at most 1000 feedback entries per request")
    try:  # JSON can carry lone surrogates; the audit line must be UTF-8
        json.dumps(items, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(400, "the feedback contains text that is not valid Unicode") from None
    problems: list[str] = []
    entries = [_one_feedback(item, f"feedback[{i}]", problems) for i, item in enumerate(items)]
    if problems:
        raise RequestError(400, "malformed feedback", problems)
    return [e for e in entries if e is not None]


# --- the core ---------------------------------------------------------------------------------

class _CapturingLog(AuditLog):
    """The shared log, keeping the evaluation line it wrote: its hash ties the cards line to it."""

    line: dict[str, Any] | None = None

    def append(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.line = super().append(*args, **kwargs)
        return self.line


@dataclass
class CdsCore:
    """Everything but HTTP: thread-safe (the Guideline and the audit log are)."""

    guideline: Guideline
    audit_log: Path | None = None
    fetch: FetchOptions = field(default_factory=FetchOptions)  # for a prefetch fetched from fhirServer
    services: dict[str, Service] = field(init=False)

    def __post_init__(self) -> None:
        self.services = services(self.guideline)

    def service(self, service_id: str) -> Service:
        try:
            return self.services[service_id]
        except KeyError:
            raise RequestError(404, f"no CDS service {service_id!r}; see GET /cds-services") from None

    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery() for s in self.services.values()]}

    def call(self, service: Service, body: bytes, client: str) -> dict[str, Any]:
        """The cards for one hook call (RequestError for what the client must fix)."""
        gid = self.guideline.id
        hook = parse_hook_call(parse_json(body), service, gid)
        if hook.absent or hook.paged:
            hook = fetch_missing(hook, service, self.fetch)
        source, patient_index = fhir_source(hook)
        try:
            read = read_fhir(source, self.guideline.content, extra=hook.facts, as_of=hook.as_of)
        except InputFactsError as exc:
            raise RequestError(400, "the patient data was rejected",
                               _located([str(p) for p in exc.problems], patient_index, gid)) from None
        log = _CapturingLog(self.audit_log) if self.audit_log else None
        try:
            result = self.guideline.evaluate(read.facts, audit_log=log)
        except InputFactsError as exc:
            raise RequestError(400, "the patient data was rejected", [str(p) for p in exc.problems]) from None
        context = _cards.CardContext(service.id, hook.hook_instance, hook.patient_id)
        cards = _cards.cards(result, self.guideline.content, context)
        if log is not None and log.line is not None:
            log.record("cards", {"service": service.id, "hook": service.hook, "hook_instance": hook.hook_instance,
                                 "client": client, "evaluation": log.line["hash"],
                                 "cards": _cards.codes_by_uuid(cards)})
        notes = [*hook.notes, *read.summary(),
                 *([] if hook.patient else ["prefetch.patient is null: no Patient data"])]
        return {"cards": cards, "extension": {gid: {"guideline": dict(result.guideline),
                                                    "asOf": hook.as_of.isoformat(), "notes": notes}}}

    def feedback(self, service: Service, body: bytes, client: str) -> dict[str, Any]:
        entries = parse_feedback(parse_json(body))
        for entry in entries:
            if self.audit_log:
                AuditLog(self.audit_log).record("feedback", {"service": service.id, "client": client, **entry})
            _log.info("feedback %s: card %s %s", service.id, entry["card"], entry["outcome"])
        return {"received": len(entries)}


# --- HTTP -------------------------------------------------------------------------------------

def _error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _unauthorized(exc: AuthError) -> JSONResponse:
    # RFC 6750: no error code when no credentials were sent; invalid_token otherwise.
    challenge = 'Bearer realm="cds-services"'
    if not exc.no_token:  # a header is latin-1 and quoted: the message may echo bytes from the token
        description = re.sub(r'[^\x20-\x7e]|["\\]', "?", str(exc))
        challenge += f', error="invalid_token", error_description="{description}"'
    return _error(401, {"error": str(exc)}, {"WWW-Authenticate": challenge})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit`: declared or streamed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Endpoints:
    def __init__(self, config: CdsConfig, core: CdsCore, verifier: TokenVerifier | None):
        self.config = config
        self.core = core
        self.verifier = verifier

    def authenticate(self, request: Request, *also: str) -> str:
        """The client's name for the audit log; AuthError when its token is not valid for this URL."""
        if self.verifier is None:
            _log.warning("UNAUTHENTICATED %s %s accepted: --dev-no-auth is for local development only",
                         request.method, request.url.path)
            return "dev-no-auth"
        assert self.config.public_url is not None
        claims: Claims = self.verifier.verify(request.headers.get("authorization"),
                                              audiences(self.config.public_url, request.url.path, *also))
        return claims.iss + (f" sub={claims.sub}" if claims.sub else "")

    async def discovery(self, request: Request) -> JSONResponse:
        try:
            self.authenticate(request)
        except AuthError as exc:
            return _unauthorized(exc)
        return JSONResponse(self.core.discovery())

    async def hook(self, request: Request) -> JSONResponse:
        return await self._post(request, self.core.call)

    async def feedback(self, request: Request) -> JSONResponse:
        return await self._post(request, self.core.feedback, feedback=True)

    async def _post(self, request: Request, handler: Any, feedback: bool = False) -> JSONResponse:
        service_id = request.path_params["service_id"]
        try:
            # The token's aud for feedback may name the feedback URL or the service it belongs to.
            client = self.authenticate(request, *([f"/cds-services/{service_id}"] if feedback else []))
        except AuthError as exc:
            return _unauthorized(exc)
        try:
            service = self.core.service(service_id)
            body = await read_body(request, self.config.max_body_bytes)
            return JSONResponse(await run_in_threadpool(handler, service, body, client))
        except RequestError as exc:
            return _error(exc.status, exc.body())
        except AuditLogError as exc:
            _log.error("%s", exc)
            return _error(500, {"error": "the evaluation could not be recorded in the audit log, so no result "
                                         "is given"})
        except RuleEngineError as exc:
            _log.error("evaluation failed: %s", exc)
            return _error(500, {"error": "the evaluation failed; no partial result is given"})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, {"error": exc.detail}, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return _error(500, {"error": "internal error"})


def create_app(config: CdsConfig) -> Starlette:
    """The ASGI app: loads the guideline (and the trusted keys) once, now. Raises CdsConfigError."""
    check_config(config)
    issuers = load_trusted_issuers(config.trusted_issuers) if config.trusted_issuers else None
    guideline = load(config.guideline)
    core = CdsCore(guideline, config.audit_log, config.fetch_options())
    endpoints = _Endpoints(config, core, TokenVerifier(issuers) if issuers is not None else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        _log.info("guideline %s %s (%s), %s: services %s", guideline.id, guideline.version,
                  guideline.content.metadata.status, guideline.digest, ", ".join(core.services))
        for line in describe(issuers or {}):
            _log.info("%s", line)
        _log.info("audit log: %s; request body limit %d bytes", config.audit_log or "none", config.max_body_bytes)
        _log.info("absent prefetch is fetched from the request's fhirServer (%s only): at most %g s, %d bytes and "
                  "%d pages per hook call", "http or https" if config.allow_http_fhir else "https",
                  config.fhir_timeout, config.max_body_bytes, config.fhir_max_pages)
        if config.allow_http_fhir:
            _log.warning("*** --allow-http-fhir: the EHR's access token and patient data may be fetched over "
                         "plain http. For local tests only. ***")
        if config.dev_no_auth:
            _log.warning("*** --dev-no-auth: NO AUTHENTICATION. Any local process can call this service. "
                         "For local development only; never with patient data. ***")
        yield

    routes = [Route("/cds-services", endpoints.discovery, methods=["GET"]),
              Route("/cds-services/{service_id}", endpoints.hook, methods=["POST"]),
              Route("/cds-services/{service_id}/feedback", endpoints.feedback, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _internal_error})


def serve(config: CdsConfig) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    app = create_app(config)
    if not _log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", server_header=False)
