"""The guideline plus one probe rule per `guidance_expected` entry, compiled for the real engine.

An expectation's condition is a condition like a rule's; rather than judging it in Python, it is
compiled as a rule recommending a probe code, so that both the search (which encodes compiled
rules) and the confirmation (which runs durable_rules) read it exactly as the engine would.
Probe codes contain '#', which no catalogue code may (schema), so they cannot collide.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.compile.program import compile_content
from engine.guideline import Guideline
from engine.model.content import Recommendation, Rule


def probe_code(index: int) -> str:
    """The probe code (and rule id) standing for expectation `index`."""
    return f"guidance-expected#{index + 1}"


def is_probe(code: str) -> bool:
    return code.startswith("guidance-expected#")


def probe_guideline(guideline: Guideline) -> Guideline:
    """`guideline` with the probe rules added (its own rules and program untouched)."""
    content = guideline.content
    catalogue = dict(content.catalogue)
    rules = list(content.rules)
    for i, expected in enumerate(content.guidance_expected):
        code = probe_code(i)
        where = expected.where or content.where["guideline"]
        catalogue[code] = Recommendation(code, "info", "routine", expected.description, expected.description, where)
        rules.append(Rule(code, expected.description, expected.when, (), "", recommend=code, where=where))
    probed = replace(content, catalogue=catalogue, rules=tuple(rules))
    return Guideline(probed, compile_content(probed), guideline.digest, Path(guideline.path))
