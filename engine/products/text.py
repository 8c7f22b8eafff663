"""Text reports for people reading a terminal."""

from __future__ import annotations

import textwrap

from engine.guideline import Guideline
from engine.model.vocabulary import kind_label, urgencies
from engine.products import next_steps as steps
from engine.products.explore_text import what_if_section, why_not_section
from engine.run.explain import show
from engine.run.result import RecommendationResult, Result

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


def _finding(guideline: Guideline, result: Result, name: str, value: object, cited: set[int]) -> list[str]:
    """'febrile neutropenia: yes  (by rule: …)', with what the value means where the content says."""
    content = guideline.content
    spec = content.derived.get(name) or content.facts.get(name)
    words = ("yes" if value else "no") if isinstance(value, bool) else \
        _value(value) if isinstance(value, list) else show(value, spec.unit if spec else None)
    reasons = result.explanations.get(name)
    reason = f"  ({'; '.join(reasons)})" if reasons else "  (given)" if name in content.facts else ""
    meaning = spec.meaning_of(value) if spec is not None else None
    said = ""
    if meaning is not None:
        said = f" — {meaning.text} [{', '.join(map(str, meaning.citations))}]"
        cited |= set(meaning.citations)
    return _wrap(f"{steps.label(content, name)}: {words}{said}{reason}", "  ", "    ")


def _next(guideline: Guideline, result: Result, everything: bool) -> list[str]:
    """What to find out first (the ranked `missing`, the tail folded), then what is not yet decided."""
    content = guideline.content
    lines = []
    asked = steps.questions(guideline.program, result.missing)
    if result.missing:
        lines.append("FIND OUT NEXT — absent facts are not read as normal; the most decisive first:")
        shown = asked if everything else asked[:steps.TOP]
        for group in shown:
            lines += _wrap(f"{steps.question(content, group)}  ({', '.join(m.fact for m in group)})", "  ", "    ")
        folded = sum(len(group) for group in asked[len(shown):])
        if folded:
            lines.append(f"  … and {folded} more; --all to list them")
        if result.what_if is None:
            lines.append("  (--what-if: what each value of these facts would add to or remove from the advice)")
        lines.append("")
    undecided = steps.undecided(content, result)
    if undecided:
        order = {m.fact: i for i, m in enumerate(m for group in asked for m in group)}  # as asked above
        lines.append("NOT YET DECIDED")
        for name, waits in undecided:
            waits = sorted(waits, key=order.__getitem__)
            lines += _wrap(f"{steps.label(content, name)} — waits for "
                           f"{steps.listing([steps.label(content, w) for w in waits], 4)}", "  ", "    ")
        lines.append("")
    return lines


def _why(rec: RecommendationResult) -> str:
    """Every cause, not only the first: each firing's matched condition (its chain stays in JSON)."""
    heads = tuple(f"rule {rule} (" for rule in rec.rules)
    causes = [line.split(": ", 1)[-1] for line in rec.because if line.startswith(heads)]
    rules = f"rule {rec.rule}" if len(rec.rules) == 1 else f"rules {', '.join(rec.rules)}"
    return f"why: {'; '.join(causes)}  [{rules}; sources {', '.join(map(str, rec.references))}]"


def evaluation(guideline: Guideline, result: Result, everything: bool = False) -> str:
    """Findings, what is undecided and what to find out next, then recommendations grouped by urgency
    ("do not" marked), sources. `everything` lists every missing fact instead of the first few."""
    g = result.guideline
    meta = guideline.content.metadata
    lines = [f"{meta.title} — version {g['version']} ({g['status']}), {g['digest'][:19]}…", ""]
    lines += [*(f"NOTE: {note}" for note in result.notes), *([""] if result.notes else [])]
    lines += applicability_lines(result)
    lines.append("FINDINGS")
    cited: set[int] = set()
    shown = {k: v for k, v in result.derived.items() if not steps.is_undecided(guideline.content, k, v)}
    if not shown:
        lines.append("  nothing could be derived from these facts")
    for name, value in shown.items():
        lines += _finding(guideline, result, name, value, cited)
    lines.append("")
    lines += _next(guideline, result, everything)
    outside = result.applicability.status == "does-not-apply"
    if not result.recommendations and not outside:  # outside: said at the top, and nothing was weighed
        lines += ["No recommendation fires for these facts.", ""]
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
            lines += _wrap(_why(rec), "      ", "  ")
            cited |= set(rec.references)
        lines.append("")
    lines += what_if_section(guideline.content, result) + why_not_section(result)
    if cited:
        lines.append("SOURCES")
        for ref in sorted(cited):
            lines += _wrap(f"[{ref}] {guideline.content.references[ref].citation}", "  ", "    ")
    return "\n".join(lines).rstrip() + "\n"
