"""Evaluate one patient's checked, canonical facts: run the compiled ruleset, assemble the result."""

from __future__ import annotations

from typing import Any

from engine.compile.encoding import INPUT, TYPE, Program
from engine.model.content import Content
from engine.run.actions import Evaluation
from engine.run.assemble import result
from engine.run.durable import Ruleset
from engine.run.result import Result


def run(content: Content, program: Program, ruleset: Ruleset, facts: dict[str, Any],
        guideline: dict[str, str], converted: dict[str, float]) -> Result:
    """Evaluate validated, canonical `facts` (engine/run/input.py checks them first)."""
    evaluation = Evaluation(content, program, facts, ruleset.constants)
    ruleset.run({TYPE: INPUT, **facts}, evaluation.handle)
    return result(evaluation, guideline, converted)
