"""The static pipeline as named data: read -> build -> semantic -> resolve -> compile -> digest.

Like OPA's compiler stage table, each stage is one function over the shared `Analysis`; a stage
collects every problem it finds, and the pipeline stops after the first stage that found any
(a later stage would only report consequences of them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.check import semantic
from engine.check.resolve import resolve
from engine.compile import limits
from engine.compile.kleene import ConditionTooLargeError
from engine.compile.program import Program, compile_content, compile_why_not
from engine.errors import Problem
from engine.loader import folder as _folder
from engine.model.content import Content, Where
from engine.model.source import Document
from engine.resources import BUNDLED_GUIDELINE
from engine.run.durable import creation_error


@dataclass
class Analysis:
    """What the stages have produced so far for one guideline folder."""

    folder: Path
    docs: dict[str, list[Document]] = field(default_factory=dict)
    content: Content | None = None   # built, then replaced by the resolved content
    program: Program | None = None
    digest: str = ""
    problems: list[Problem] = field(default_factory=list)
    stage: str = ""                  # the last stage that ran


def _read(a: Analysis) -> list[Problem]:
    """Parse every YAML file and check it against its JSON Schema (all files, all problems)."""
    a.docs, problems = _folder.read_folder(a.folder)
    return problems


def _build(a: Analysis) -> list[Problem]:
    a.content = _folder.build(a.docs)
    return []


def _semantic(a: Analysis) -> list[Problem]:
    assert a.content is not None
    return semantic.check(a.content)


def _resolve(a: Analysis) -> list[Problem]:
    assert a.content is not None
    a.content, problems = resolve(a.content)
    return problems


def _compile(a: Analysis) -> list[Problem]:
    assert a.content is not None
    try:
        a.program = compile_content(a.content)
    except ConditionTooLargeError as exc:
        where = exc.where if isinstance(exc.where, Where) else a.content.where["guideline"]
        return [where.problem("too-large", f"{exc}; split the condition into derived facts", "when")]
    return _capacity(a.content, a.program) or _why_not_capacity(a.content, a.program)


def _why_not_capacity(content: Content, program: Program) -> list[Problem]:
    """The why-not program (the ruleset plus every recommendation's known-false branches) within the
    same limits, so a guideline that validates can also answer `--why-not` for every code."""
    try:
        why_not = compile_why_not(content, program)
    except ConditionTooLargeError as exc:
        where = exc.where if isinstance(exc.where, Where) else content.where["guideline"]
        return [where.problem("too-large", f"{exc} when negated (for --why-not); split the condition into "
                              "derived facts", "when")]
    return [dataclasses.replace(p, message=f"{p.message} (in the why-not ruleset, which adds each "
                                "recommendation's known-false branches)") for p in _capacity(content, why_not)]


def _capacity(content: Content, program: Program) -> list[Problem]:
    """durable_rules' limits (engine/compile/limits.py), so that a valid guideline also loads."""
    found = limits.static_problem(content, program)
    if found:
        return [found[0].problem("too-large", found[1] + "; split or simplify the rules")]
    code = creation_error(program.definition)
    if code is None:
        return []
    # The limits are per node and only grow with more rules: bisect for the first failing rule.
    good, bad = 1, len(program.definition)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (good, middle) if creation_error(limits.prefix(program, middle)) else (middle, bad)
    where, owner = limits.where_of(content, program.actions[list(program.definition)[bad - 1]])
    reason = limits.CREATION_ERRORS.get(code, f"durable_rules error {code}")
    return [where.problem("too-large", f"{owner}: durable_rules cannot take this ruleset ({reason}); "
                          "split or simplify the rules")]


def _digest(a: Analysis) -> list[Problem]:
    """sha256 of the guideline's content, independent of YAML layout, comments and file split."""
    payload: dict[str, Any] = {kind: [d.data for d in sorted(ds, key=lambda d: d.file)]
                               for kind, ds in a.docs.items() if kind != "rules"}
    payload["rules"] = sorted((r for d in a.docs.get("rules", []) for r in d.data["rules"]),
                              key=lambda r: str(r.get("id")))
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    a.digest = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return []


STAGES: tuple[tuple[str, Callable[[Analysis], list[Problem]]], ...] = (
    ("read", _read),
    ("build", _build),
    ("semantic", _semantic),
    ("resolve", _resolve),
    ("compile", _compile),
    ("digest", _digest),
)


def analyse(path: Path | str | None = None, until: str = "digest") -> Analysis:
    """Run the stages in order up to `until`; never raises for bad content (see `.problems`)."""
    analysis = Analysis(Path(path) if path is not None else BUNDLED_GUIDELINE)
    for name, stage in STAGES:
        analysis.stage = name
        analysis.problems = stage(analysis)
        if analysis.problems or name == until:
            break
    return analysis
