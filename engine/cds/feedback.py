"""A feedback request (POST /cds-services/{id}/feedback) checked entry by entry into audit-line fields."""

from __future__ import annotations

import json
import uuid
from typing import Any

from engine.cds.requests import RequestError
from engine.fhir.dates import zoned_datetime

MAX_ENTRIES = 1000
_CODING_KEYS = frozenset({"code", "system", "display", "extension"})
_ENTRY_KEYS = frozenset({"card", "outcome", "acceptedSuggestions", "overrideReason", "outcomeTimestamp",
                         "extension"})


def _coding(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and value[k] for k in ("code", "system")):
        problems.append(f"{where}: expected a Coding with code and system")
    elif set(value) - _CODING_KEYS:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(set(value) - _CODING_KEYS))}")


def _one_feedback(item: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        problems.append(f"{where}: expected a JSON object")
        return None
    before = len(problems)
    if set(item) - _ENTRY_KEYS:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(set(item) - _ENTRY_KEYS))}")
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
    if zoned_datetime(stamp) is None:
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
    if len(items) > MAX_ENTRIES:
        raise RequestError(400, f"at most {MAX_ENTRIES} feedback entries per request")
    try:  # JSON can carry lone surrogates; the audit line must be UTF-8
        json.dumps(items, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(400, "the feedback contains text that is not valid Unicode") from None
    problems: list[str] = []
    entries = [_one_feedback(item, f"feedback[{i}]", problems) for i, item in enumerate(items)]
    if problems:
        raise RequestError(400, "malformed feedback", problems)
    return [e for e in entries if e is not None]
