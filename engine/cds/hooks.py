"""The service without HTTP: a hook call evaluated into cards, feedback recorded, discovery listed.

`CdsCore` parses, validates, evaluates and builds cards synchronously; engine/cds/app.py runs it
in a worker thread, because durable_rules holds the GIL and a Guideline evaluates one patient at
a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cds import cards as _cards
from engine.cds.body import parse_json
from engine.cds.discovery import Service, services
from engine.cds.feedback import parse_feedback
from engine.cds.fhir_fetch import FetchOptions
from engine.cds.prefetch import fetch_missing, fhir_source, located
from engine.cds.requests import RequestError, parse_hook_call
from engine.errors import InputFactsError
from engine.fhir.reader import read_fhir
from engine.guideline import Guideline
from engine.products.audit import AuditLog
from engine.run.result import Result
from engine.run.why_not import UnknownCodeError

_log = logging.getLogger("engine.cds")


class _CapturingLog(AuditLog):
    """The shared log, keeping the evaluation line it wrote: its hash ties the cards line to it."""

    line: dict[str, Any] | None = None

    def append(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.line = super().append(*args, **kwargs)
        return self.line


def _why_not_extension(result: Result) -> dict[str, Any]:
    """The why-not answers a tool asked for (`extension.<guideline id>.why_not`), as in the API's JSON."""
    return {"why_not": [e.to_dict() for e in result.why_not]} if result.why_not is not None else {}


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
                               located(exc.lines(), patient_index, gid)) from None
        log = _CapturingLog(self.audit_log) if self.audit_log else None
        try:
            result = self.guideline.evaluate(read.facts, audit_log=log, why_not=hook.why_not)
        except InputFactsError as exc:
            raise RequestError(400, "the patient data was rejected", exc.lines()) from None
        except UnknownCodeError as exc:
            raise RequestError(400, f"extension.{gid}.why_not: {exc}") from None
        context = _cards.CardContext(service.id, hook.hook_instance, hook.patient_id)
        cards = _cards.cards(result, self.guideline.content, context)
        if log is not None and log.line is not None:
            log.record("cards", {"service": service.id, "hook": service.hook, "hook_instance": hook.hook_instance,
                                 "client": client, "evaluation": log.line["hash"],
                                 "cards": _cards.codes_by_uuid(cards)})
        notes = [*hook.notes, *read.summary(),
                 *([] if hook.patient else ["prefetch.patient is null: no Patient data"])]
        return {"cards": cards, "extension": {gid: {"guideline": dict(result.guideline),
                                                    "asOf": hook.as_of.isoformat(), "notes": notes,
                                                    **_why_not_extension(result)}}}

    def feedback(self, service: Service, body: bytes, client: str) -> dict[str, Any]:
        """Each feedback entry recorded in the audit log (and logged); the count received."""
        entries = parse_feedback(parse_json(body))
        for entry in entries:
            if self.audit_log:
                AuditLog(self.audit_log).record("feedback", {"service": service.id, "client": client, **entry})
            _log.info("feedback %s: card %s %s", service.id, entry["card"], entry["outcome"])
        return {"received": len(entries)}
