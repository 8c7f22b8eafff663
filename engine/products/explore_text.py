"""The text sections of what-if and why-not (contract section 8), shown only when asked for."""

from __future__ import annotations

import textwrap

from engine.model.content import Content
from engine.run.explain import show
from engine.run.result import Result, WhatIfScenario

_WIDTH = 100
_STATUS = {"fired": "fired", "not-fired": "did not fire", "undetermined": "undetermined"}


def _wrap(text: str, indent: str, hang: str = "    ") -> list[str]:
    # Codes are hyphenated: never break a line inside one.
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False) or [indent]


def _change(scenario: WhatIfScenario) -> str:
    parts = ([f"adds {', '.join(scenario.adds)}"] if scenario.adds else []) + \
        ([f"removes {', '.join(scenario.removes)}"] if scenario.removes else [])
    return "; ".join(parts)


def what_if_section(content: Content, result: Result) -> list[str]:
    """Each missing fact's values that change the advice, one line each; the others folded."""
    if result.what_if is None:
        return []
    lines = ["WOULD CHANGE THE ADVICE — each missing fact tried alone at each value that decides something:"]
    unchanged, cut = [], []
    for entry in result.what_if:
        spec = content.facts.get(entry.fact)
        unit = spec.unit if spec else None
        changing = [s for s in entry.scenarios if s.adds or s.removes]
        if not changing:
            unchanged.append(entry.fact)
        for scenario in changing:
            lines += _wrap(f"{entry.fact} {show(scenario.value, unit)}: {_change(scenario)}", "  ")
        if entry.truncated:
            cut.append(entry.fact)
    if not result.what_if:
        lines.append("  no missing fact could change the advice")
    elif len(unchanged) == len(result.what_if):
        lines.append("  no single missing fact changes the advice on its own")
    elif unchanged:
        lines += _wrap(f"… {len(unchanged)} more change nothing on their own: {', '.join(unchanged)}", "  ")
    if cut:
        lines += _wrap(f"not every value was tried (the what-if budget ran out) for: {', '.join(cut)}", "  ")
    return [*lines, ""]


def why_not_section(result: Result) -> list[str]:
    """For each code asked about: fired, did not fire or undetermined, and the engine's reasons."""
    if result.why_not is None:
        return []
    lines = ["WHY NOT"]
    for entry in result.why_not:
        lines.append(f"  {entry.code}: {_STATUS[entry.status]}")
        # A fired code's full chain is in its recommendation above: here only the rules that fired.
        reasons = [r for r in entry.because if r.startswith("rule ")] if entry.status == "fired" else entry.because
        for reason in reasons:
            lines += _wrap(reason, "      ")
    return [*lines, ""]
