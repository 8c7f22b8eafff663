"""A result as CDS Hooks 2.0 cards: one card per recommendation, plus one "find out next" card.

One card per recommendation, not grouped: each carries its own rule, reasons and sources, a
clinician accepts or overrides each one separately, and feedback then names exactly the
recommendation it is about. "Do not" recommendations are never merged into another card and are
at least `warning`. Cards keep the result's order (urgency, then code).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.model.content import Content
from engine.model.vocabulary import kind_label
from engine.products import next_steps as steps
from engine.run.explain import show_unit
from engine.run.result import MissingFact, RecommendationResult, Result

SUMMARY_MAX = 139            # CDS Hooks: "<140-character summary"
MISSING_KEY = "#missing"     # the missing-facts card's key in the uuid ('#' never starts a code)
APPLICABILITY_KEY = "#applicability"  # the does-not-apply card's key (contract section 7)
# Fixed namespace: a card's uuid is uuid5(NAMESPACE, service | hookInstance | patient | code).
NAMESPACE = uuid.UUID("5b0f3c6e-8a2d-5d4e-9c1f-3e7a9b2d4c60")
_MD_ESCAPE = str.maketrans({c: "\\" + c for c in "\\`*[]<>|~"})
_LOOSE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")  # intraword _ is never emphasis
_LINE_START = re.compile(r"^([-+=#])|^(\d+)([.)])")  # would start a list or heading


@dataclass(frozen=True)
class CardContext:
    """What makes a card's uuid unique and stable: the same hook call gives the same uuids."""

    service: str
    hook_instance: str
    patient_id: str


def card_uuid(context: CardContext, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{context.service}|{context.hook_instance}|{context.patient_id}|{key}"))


def indicator(rec: RecommendationResult) -> str:
    """critical for immediate; warning for urgent and for every "do not"; info otherwise."""
    if rec.urgency == "immediate":
        return "critical"
    if rec.urgency == "urgent" or rec.kind == "do-not":
        return "warning"
    return "info"


def summary(text: str) -> str:
    """`text` on one line, cut at a word boundary with '…' to fit SUMMARY_MAX characters."""
    text = " ".join(text.split())
    if len(text) <= SUMMARY_MAX:
        return text
    cut = text[:SUMMARY_MAX - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"


@functools.lru_cache(maxsize=4096)  # the same reasons recur across the cards of one evaluation
def md(text: str) -> str:
    """Plain text made literal in GitHub-flavoured Markdown (`10*9/L * 2` must not turn italic)."""
    text = " ".join(text.split()).translate(_MD_ESCAPE)
    if "_" in text:
        text = _LOOSE_UNDERSCORE.sub(r"\\_", text)
    return _LINE_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def source(guideline: Mapping[str, str], code: str | None = None, display: str | None = None) -> dict[str, Any]:
    """The card's source: the guideline's title and version (and draft status); the code as topic."""
    label = f"{guideline['title']} {guideline['version']}"
    if guideline.get("status") and guideline["status"] != "approved":
        label += f" ({guideline['status']})"
    out: dict[str, Any] = {"label": label}
    if code is not None:
        out["topic"] = {"system": f"urn:guideline:{guideline['id']}", "code": code, "display": display or code}
    return out


def _footer(guideline: Mapping[str, str], rule: str | None = None) -> str:
    head = f"rule `{rule}` · " if rule else ""
    return f"_{head}{md(guideline['title'])} {guideline['version']} ({guideline['status']}), {guideline['digest']}_"


def recommendation_card(rec: RecommendationResult, guideline: Mapping[str, str], context: CardContext) -> dict[str, Any]:
    lines = [f"**{kind_label(rec.kind)}** · {rec.urgency}", "", md(rec.text), "", "**Why**", ""]
    lines += [f"- {md(reason)}" for reason in rec.because]
    if rec.citations:
        lines += ["", "**Sources**", ""]
        lines += [f"- {md(citation)}" for citation in rec.citations]
    lines += ["", _footer(guideline, rec.rule)]
    return {
        "uuid": card_uuid(context, rec.code),
        "summary": summary(rec.title),
        "indicator": indicator(rec),
        "detail": "\n".join(lines),
        "source": source(guideline, rec.code, rec.title),
    }


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def _fact_head(content: Content, fact: str) -> str:
    """'**fact** (unit; LOINC …)' in Markdown."""
    spec = content.facts.get(fact)
    notes = []
    if spec is not None and spec.type == "number" and spec.unit:
        notes.append(md(show_unit(spec.unit).strip()))
    if spec is not None and spec.loinc:
        notes.append(f"LOINC {', '.join(spec.loinc)}")
    return f"**{md(fact)}**" + (f" ({'; '.join(notes)})" if notes else "")


def _missing_line(content: Content, missing: MissingFact) -> str:
    """'- **fact** (unit; LOINC …): first sentence of its description — decides codes' in Markdown."""
    spec = content.facts.get(missing.fact)
    described = f": {md(_first_sentence(spec.description))}" if spec is not None and spec.description else ""
    return f"- {_fact_head(content, missing.fact)}{described} — decides {md(', '.join(missing.needed_for))}"


def _next_line(content: Content, missing: MissingFact) -> str:
    """'**temperature** (°C; LOINC …) — Measure the temperature: it decides … recommendations'."""
    return (f"{_fact_head(content, missing.fact)} — {md(steps.ask(content, missing.fact))}: "
            f"it decides {md(steps.decides(content, missing))}")


def missing_card(missing: Sequence[MissingFact], content: Content, guideline: Mapping[str, str],
                 context: CardContext) -> dict[str, Any]:
    """The "find out next" info card: the absent facts in the result's ranked order (the most
    decisive first), the first few with how to find each out and what it would decide, then the rest.
    """
    names = [steps.label(content, m.fact) for m in missing]
    head = "Find out next: "
    shown = ""
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        candidate = f"{shown}, {name}" if shown else name
        if len(head + candidate + (f" and {rest} more" if rest else "")) > SUMMARY_MAX:
            shown = f"{shown} and {len(names) - i} more"
            break
        shown = candidate
    how = (f"_The EHR sends facts with a LOINC code as Observations; the others in the request extension "
           f"`{guideline['id']}.facts`._")
    intro = ("Absent data is not read as normal: these facts were not given, and each would let the guideline "
             "decide more. The most decisive come first.")
    top, tail = missing[:steps.TOP], missing[steps.TOP:]
    lines = [intro, "", *[f"{i}. {_next_line(content, m)}" for i, m in enumerate(top, 1)]]
    if tail:
        lines += ["", f"**Also missing** ({len(tail)})", "", *[_missing_line(content, m) for m in tail]]
    lines += ["", how, "", _footer(guideline)]
    return {
        "uuid": card_uuid(context, MISSING_KEY),
        "summary": summary(head + shown),
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": source(guideline),
    }


def not_applicable_card(result: Result, context: CardContext) -> dict[str, Any]:
    """The one card for a patient outside the guideline's population: it does not apply, and why."""
    a = result.applicability
    lines = [f"This guideline is for: {md(a.population)}.", "", "**Why it does not apply**", ""]
    lines += [f"- {md(reason)}" for reason in a.because]
    lines += ["", "No recommendation of this guideline is given for this patient.", "", _footer(result.guideline)]
    return {
        "uuid": card_uuid(context, APPLICABILITY_KEY),
        "summary": summary(f"Guideline does not apply: {a.population} — {'; '.join(a.because)}"),
        "indicator": "info",
        "detail": "\n".join(lines),
        # Its topic names the card (as a code does a recommendation's), so the audit log's cards line does too.
        "source": source(result.guideline, APPLICABILITY_KEY, "Whom this guideline is for"),
    }


def cards(result: Result, content: Content, context: CardContext) -> list[dict[str, Any]]:
    """Every card for one evaluation: the recommendations in result order, then missing facts;
    for a patient outside the population, only the card saying the guideline does not apply."""
    if result.applicability.status == "does-not-apply":
        return [not_applicable_card(result, context)]
    out = [recommendation_card(rec, result.guideline, context) for rec in result.recommendations]
    if result.missing:
        out.append(missing_card(result.missing, content, result.guideline, context))
    return out


def codes_by_uuid(cards_: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """uuid -> recommendation code (or MISSING_KEY, APPLICABILITY_KEY) for the audit log."""
    return {c["uuid"]: c["source"].get("topic", {}).get("code", MISSING_KEY) for c in cards_}
