"""The pipeline in named stages: read -> schema-check -> build -> semantic-check -> compile."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.check import semantic as _semantic
from engine.compile.kleene import ConditionTooLargeError
from engine.compile.program import Program, compile_content
from engine.errors import GuidelineInvalidError, Problem
from engine.load import folder as _loader
from engine.model.content import Content, Where
from engine.model.source import Document
from engine.resources import BUNDLED_GUIDELINE
from engine.run.durable import Ruleset
from engine.run.evaluation import run
from engine.run.input import check_facts
from engine.run.result import Result

if TYPE_CHECKING:
    from engine.products.audit import AuditLog



def _digest(docs: dict[str, list[Document]]) -> str:
    """sha256 of the guideline's content, independent of YAML layout, comments and file split."""
    payload: dict[str, Any] = {kind: [d.data for d in sorted(ds, key=lambda d: d.file)]
                               for kind, ds in docs.items() if kind != "rules"}
    payload["rules"] = sorted((r for d in docs.get("rules", []) for r in d.data["rules"]),
                              key=lambda r: str(r.get("id")))
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def analyse(path: Path | str | None = None) -> tuple[Content | None, Program | None, str, list[Problem]]:
    """Run every static stage; (content, program, digest, problems). Never raises for bad content."""
    folder = Path(path) if path is not None else BUNDLED_GUIDELINE
    docs, problems = _loader.read_folder(folder)
    if problems:
        return None, None, "", problems
    content = _loader.build(docs)
    problems = _semantic.check(content)
    if problems:
        return content, None, "", problems
    try:
        program = compile_content(content)
    except ConditionTooLargeError as exc:
        where = exc.where if isinstance(exc.where, Where) else content.where["guideline"]
        return content, None, "", [where.problem("too-large", f"{exc}; split the condition into "
                                                 "derived facts", "when")]
    return content, program, _digest(docs), []


def validate(path: Path | str | None = None) -> list[Problem]:
    """Every schema and semantic problem of a guideline folder, sorted; [] when valid."""
    return sorted(set(analyse(path)[3]))


class Guideline:
    """A loaded, compiled guideline. Thread-safe; evaluate as many patients as you like."""

    def __init__(self, content: Content, program: Program, digest: str, path: Path):
        self.content = content
        self.program = program
        self.digest = digest
        self.path = path
        self._ruleset = Ruleset(program.definition)
        weakref.finalize(self, self._ruleset.close)

    @property
    def id(self) -> str:
        return self.content.metadata.id

    @property
    def version(self) -> str:
        return self.content.metadata.version

    @property
    def info(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "digest": self.digest,
                "title": self.content.metadata.title, "status": self.content.metadata.status}

    def evaluate(self, facts: Mapping[str, Any], audit_log: AuditLog | None = None) -> Result:
        """Recommendations for one patient's facts (contract section 4 names and units).

        Raises InputFactsError (every problem with the input, nothing evaluated) or
        RuleEngineError (the evaluation failed; no partial result). With `audit_log`, the result
        is returned only once its line is durably appended (AuditLogError otherwise).
        """
        canonical, converted = check_facts(self.content, facts)
        result = run(self.content, self.program, self._ruleset, canonical, self.info, converted)
        if audit_log is not None:
            audit_log.append(self.info, canonical, result)
        return result


def load(path: Path | str | None = None) -> Guideline:
    """Load, validate and compile a guideline folder (None = the bundled neutropenia guideline)."""
    folder = Path(path) if path is not None else BUNDLED_GUIDELINE
    content, program, digest, problems = analyse(folder)
    if problems:
        raise GuidelineInvalidError(problems)
    assert content is not None and program is not None
    return Guideline(content, program, digest, folder)
