"""Text reports for people reading a terminal."""

from __future__ import annotations

import textwrap

from ._explain import show
from ._guideline import Guideline
from ._result import Result

_MARK = {"do": "DO", "do-not": "DO NOT", "consider": "CONSIDER", "info": "NOTE"}
_WIDTH = 100


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)


def evaluation(guideline: Guideline, result: Result) -> str:
    """Recommendations grouped by urgency, "do not" items marked, each with its reasons."""
    g = result.guideline
    lines = [f"{guideline.content.metadata.title} — version {g['version']} ({g['status']}), {g['digest'][:19]}…", ""]
    derived = ", ".join(f"{k} {show(v) if not isinstance(v, list) else '–'.join(map(show, v))}"
                        for k, v in result.derived.items() if v is not None)
    lines += [_wrap(f"Derived: {derived or 'nothing could be derived'}", ""), ""]
    if not result.recommendations:
        lines.append("No recommendation fires for these facts.")
    for urgency in ("immediate", "urgent", "routine"):
        recs = [r for r in result.recommendations if r.urgency == urgency]
        if not recs:
            continue
        lines.append(f"== {urgency.upper()} ==")
        for rec in recs:
            mark = _MARK[rec.kind]
            flag = "  !! " if rec.kind == "do-not" else "  "
            lines.append(f"{flag}[{mark}] {rec.title}  ({rec.code})")
            lines.append(_wrap(rec.text, "      "))
            lines.append(_wrap("because: " + rec.because[0].split(": ", 1)[-1], "      "))
            for reason in rec.because[1:]:
                lines.append(_wrap("  ← " + reason, "      "))
            lines.append(_wrap("sources: " + "; ".join(rec.citations), "      "))
            lines.append("")
    if result.missing:
        lines.append("== MISSING DATA (these facts would decide more; absent is not read as normal) ==")
        for m in result.missing:
            lines.append(_wrap(f"{m.fact}: needed for {', '.join(m.needed_for)}", "  "))
    return "\n".join(lines).rstrip() + "\n"
