"""Text reports for people reading a terminal."""

from __future__ import annotations

import textwrap

from engine.guideline import Guideline
from engine.model.vocabulary import kind_label, urgencies
from engine.products.explore_text import what_if_section, why_not_section
from engine.run.explain import show
from engine.run.result import Result

_WIDTH = 100


def _wrap(text: str, indent: str, hang: str = "") -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent + hang) or [indent]


def _value(value: object) -> str:
    return "–".join(map(show, value)) if isinstance(value, list) else show(value)


def applicability_lines(result: Result) -> list[str]:
    """Whom the guideline is for, first (contract section 7): outside its population, prominently."""
    a = result.applicability
    because = "; ".join(a.because)
    if a.status == "does-not-apply":
        return [*_wrap(f"THIS GUIDELINE DOES NOT APPLY: {a.population} — {because}", "", "  "),
                "  No recommendation is given for this patient.", ""]
    if a.status == "undetermined":
        return [*_wrap(f"Not known whether this guideline applies ({a.population}): {because}.", "", "  "), ""]
    if a.because:
        return [*_wrap(f"Applies: {a.population} — {because}.", "", "  "), ""]
    return []  # no population declared: the guideline is for everyone, nothing to say


def evaluation(guideline: Guideline, result: Result) -> str:
    """Findings, then recommendations grouped by urgency ("do not" marked), missing data, sources."""
    g = result.guideline
    meta = guideline.content.metadata
    lines = [f"{meta.title} — version {g['version']} ({g['status']}), {g['digest'][:19]}…", ""]
    lines += [*(f"NOTE: {note}" for note in result.notes), *([""] if result.notes else [])]
    lines += applicability_lines(result)
    lines.append("FINDINGS")
    shown = {k: v for k, v in result.derived.items() if v is not None}
    if not shown:
        lines.append("  nothing could be derived from these facts")
    for name, value in shown.items():
        reasons = result.explanations.get(name)
        reason = f"  ({reasons[0]})" if reasons else "  (given)" if name in guideline.content.facts else ""
        lines += _wrap(f"{name} = {_value(value)}{reason}", "  ", "    ")
    lines.append("")
    outside = result.applicability.status == "does-not-apply"
    if not result.recommendations and not outside:  # outside: said at the top, and nothing was weighed
        lines += ["No recommendation fires for these facts.", ""]
    cited: set[int] = set()
    for urgency in urgencies():
        recs = [r for r in result.recommendations if r.urgency == urgency]
        if not recs:
            continue
        lines.append(urgency.upper())
        for rec in recs:
            mark = f"[{kind_label(rec.kind)}]"
            if rec.kind == "do-not":
                mark = f"!! {mark}"
            lines.append(f"  {mark} {rec.title}  ({rec.code})")
            lines += _wrap(rec.text, "      ")
            reason = rec.because[0].split(": ", 1)[-1]
            refs = ", ".join(map(str, rec.references))
            lines += _wrap(f"why: {reason}  [rule {rec.rule}; sources {refs}]", "      ", "  ")
            cited |= set(rec.references)
        lines.append("")
    if result.missing:
        lines.append("MISSING DATA — absent facts are not read as normal; these would decide more:")
        for m in result.missing:
            lines += _wrap(f"{m.fact}: needed for {', '.join(m.needed_for)}", "  ", "    ")
        lines.append("")
    lines += what_if_section(guideline.content, result) + why_not_section(result)
    if cited:
        lines.append("SOURCES")
        for ref in sorted(cited):
            lines += _wrap(f"[{ref}] {guideline.content.references[ref].citation}", "  ", "    ")
    return "\n".join(lines).rstrip() + "\n"
