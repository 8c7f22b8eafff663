"""Every witness re-evaluated on the real engine before it is reported.

The search reasons about a model of the compiled program; a bug there must never reach an
editor as a false witness. So each witness is evaluated by Guideline.evaluate (and, for a gap,
by the probe guideline that runs the expectation's condition on durable_rules too), and a
witness the engine does not confirm stops `check` with an internal error.
"""

from __future__ import annotations

from dataclasses import replace

from engine.errors import EngineError, RuleEngineError
from engine.guideline import Guideline
from engine.products.check.findings import Finding
from engine.products.check.probe import probe_code


class UnconfirmedWitnessError(RuleEngineError):
    """The analysis produced a witness the engine does not confirm (a bug in `check`, exit 1)."""


def confirm(finding: Finding, guideline: Guideline, probed: Guideline) -> Finding:
    """`finding` with the codes the engine gave its witness; raises if the engine disagrees."""
    if finding.witness is None:
        return finding
    try:
        codes = guideline.evaluate(finding.witness).codes
        probe_codes = probed.evaluate(finding.witness).codes
    except EngineError as exc:
        raise UnconfirmedWitnessError(f"internal error: the witness {finding.witness} of a {finding.kind} "
                                      f"finding could not be evaluated: {exc}") from exc
    if finding.kind == "conflict":
        ok = set(finding.codes) <= set(codes)
    else:
        index = next(i for i, e in enumerate(guideline.content.guidance_expected)
                     if e.description == finding.expectation)
        ok = not codes and probe_code(index) in probe_codes
    if not ok:
        raise UnconfirmedWitnessError(f"internal error: the engine does not confirm the {finding.kind} witness "
                                      f"{finding.witness} (it recommends {codes or 'nothing'}); please report it")
    return replace(finding, confirmed=tuple(codes))
