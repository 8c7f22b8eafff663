"""Reporters for `guideline diff`: text for terminals, markdown for pull-request reviews, JSON for programs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from engine.products.diff.results import (
    Change,
    CodeImpact,
    CohortImpact,
    Diff,
    PatientChange,
)

_WIDTH = 100


def _value(v: Any) -> str:
    """A derived value; '–' when the version did not determine it."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_value, v)) + "]"
    return str(v)


def _derived(p: PatientChange) -> list[str]:
    return [f"{d.fact}: {_value(d.old)} → {_value(d.new)}" for d in p.derived]


def _summary(diff: Diff) -> str:
    b = diff.behaviour
    probed = ", ".join(fact for fact, _ in b.thresholds) or "none"
    return (f"{len(b.changed)} of {b.patients_compared} patients change ({b.from_cases} from the clinical cases, "
            f"{b.from_boundaries} at and beside the thresholds of {probed}; {b.skipped} skipped as invalid "
            f"input for one version; {b.seconds:.1f} s)")


def _verdict(diff: Diff) -> str:
    v = diff.version_check
    return f"required bump {v.required.upper()}, actual {v.actual.upper()}"


# --- text -------------------------------------------------------------------------------------

def _wrap(text: str, indent: str, hang: str = "    ") -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False) or [indent]


def text(diff: Diff) -> str:
    o, n = diff.old, diff.new
    lines = [f"guideline diff: {o.id} {o.version} → {n.id} {n.version}",
             f"  old: {o.label}  ({o.version}, {o.digest[:19]}…)",
             f"  new: {n.label}  ({n.version}, {n.digest[:19]}…)", ""]
    v = diff.version_check
    lines.append(f"VERSION CHECK: {'OK' if v.ok else 'FAILED'} — {_verdict(diff)}")
    for m in v.messages:
        lines += _wrap(m, "  ")
    lines.append("")
    lines.append(f"CHANGES IN CONTENT ({len(diff.semantic)})" if diff.semantic else "NO CHANGE IN CONTENT")
    for c in diff.semantic:
        lines += _wrap(f"[{c.level}] {c.text}", "  ")
        if c.long_text:
            lines += _wrap(f"old: {c.old}", "      ", "     ")
            lines += _wrap(f"new: {c.new}", "      ", "     ")
    lines.append("")
    b = diff.behaviour
    lines.append("CHANGES IN BEHAVIOUR" if b.changed else "NO CHANGE IN BEHAVIOUR")
    lines += _wrap(_summary(diff), "  ")
    if b.unprobed:
        lines += _wrap(f"thresholds on derived facts ({', '.join(b.unprobed)}) are reached only through the "
                       "clinical cases", "  ")
    if b.changed:
        impact = "; ".join(f"{'+' if w == 'added' else '-' if w == 'removed' else '~'}{k} in {count}"
                           for k, w, count in b.impact())
        lines += _wrap(f"impact: {impact}", "  ")
    for p in b.changed:
        lines.append("")
        lines += _wrap(p.name, "  ")
        if p.codes_added:
            lines += _wrap(f"+ {', '.join(p.codes_added)}", "      ")
        if p.codes_removed:
            lines += _wrap(f"- {', '.join(p.codes_removed)}", "      ")
        if p.derived:
            lines += _wrap(f"~ {'; '.join(_derived(p))}", "      ")
    if diff.cohort is not None:
        lines += ["", *cohort_text(diff.cohort)]
    return "\n".join(lines).rstrip() + "\n"


def _examples(i: CodeImpact) -> str:
    """'+ p1, p2, …; - p7': the first patients gaining and losing the code (… when there are more)."""
    def some(sign: str, ids: tuple[str, ...], count: int) -> str:
        return f"{sign} {', '.join(ids)}{', …' if count > len(ids) else ''}" if ids else ""
    return "; ".join(p for p in (some("+", i.added_examples, i.added), some("-", i.removed_examples, i.removed)) if p)


def cohort_text(c: CohortImpact) -> list[str]:
    """The impact table of `diff --cohort`: per code, how many patients gain / lose it, with examples."""
    lines = [f"IMPACT ON THE COHORT: {c.changed:,} of {c.patients:,} patients change"
             + (f" ({c.derived_changed:,} in derived facts)" if c.derived_changed else "")
             + (f"; {c.invalid:,} invalid input for a version, not compared" if c.invalid else "")]
    if not c.codes:
        return lines
    width = max(len("code"), *(len(i.code) for i in c.codes))
    lines.append(f"  {'code':<{width}}  {'gain':>8}  {'lose':>8}  examples")
    for i in c.codes:
        lines.append(f"  {i.code:<{width}}  {i.added:>8,}  {i.removed:>8,}  {_examples(i)}")
    return lines


# --- markdown ---------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _codes(codes: tuple[str, ...]) -> str:
    return ", ".join(f"`{c}`" for c in codes)


def _change_md(c: Change) -> list[str]:
    out = [f"- **{c.area} `{c.key}`** — {_cell(c.summary)} · *{c.level}*"]
    if c.long_text:
        out += [f"  - old: {_cell(c.old or '')}", f"  - new: {_cell(c.new or '')}"]
    return out


def markdown(diff: Diff) -> str:
    o, n, v, b = diff.old, diff.new, diff.version_check, diff.behaviour
    lines = [f"## Guideline diff: `{o.id}` {o.version} → `{n.id}` {n.version}", "",
             "| | version | digest | source |", "|---|---|---|---|",
             f"| old | {o.version} | `{o.digest[:19]}…` | `{_cell(o.label)}` |",
             f"| new | {n.version} | `{n.digest[:19]}…` | `{_cell(n.label)}` |", "",
             f"### Version check: {'✅ passes' if v.ok else '❌ fails'}", "",
             f"Required bump: **{v.required.upper()}** · actual bump: **{v.actual.upper()}**", ""]
    lines += [f"- {_cell(m)}" for m in v.messages]
    lines += ["", f"### Changes in content ({len(diff.semantic)})", ""]
    if not diff.semantic:
        lines.append("No change in meaning.")
    for c in diff.semantic:
        lines += _change_md(c)
    lines += ["", "### Changes in behaviour", "", _summary(diff) + "."]
    if b.unprobed:
        derived = ", ".join(f"`{f}`" for f in b.unprobed)
        lines += ["", f"Thresholds on derived facts ({derived}) are reached only through the clinical cases."]
    if b.changed:
        lines += ["", "#### Impact", "", "| recommendation / derived fact | change | patients |", "|---|---|---|"]
        lines += [f"| `{k}` | {w} | {count} |" for k, w, count in b.impact()]
        lines += ["", "#### Patients", "", "| patient | codes added | codes removed | derived facts (old → new) |",
                  "|---|---|---|---|"]
        for p in b.changed:
            lines.append(f"| {_cell(p.name)} | {_codes(p.codes_added)} | {_codes(p.codes_removed)} | "
                         f"{_cell('; '.join(_derived(p)))} |")
    if diff.cohort is not None:
        lines += cohort_markdown(diff.cohort)
    return "\n".join(lines).rstrip() + "\n"


def cohort_markdown(impact: CohortImpact) -> list[str]:
    lines = ["", "### Impact on the cohort", "", f"{impact.changed:,} of {impact.patients:,} patients change"
             + (f"; {impact.invalid:,} invalid input for a version, not compared" if impact.invalid else "") + "."]
    if impact.codes:
        lines += ["", "| code | patients gaining | patients losing | examples |", "|---|---|---|---|"]
        lines += [f"| `{i.code}` | {i.added:,} | {i.removed:,} | {_cell(_examples(i))} |" for i in impact.codes]
    return lines


def as_json(diff: Diff) -> str:
    return json.dumps(diff.to_dict(), ensure_ascii=False, indent=2) + "\n"


RENDER = {"text": text, "markdown": markdown, "json": as_json}
