"""A loaded guideline: validated, resolved and compiled content that evaluates patients."""

from __future__ import annotations

import dataclasses
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.compile.program import Program
from engine.errors import GuidelineInvalidError, Problem, RuleEngineError
from engine.loader.folder import folder_texts
from engine.model.content import Content
from engine.pipeline import analyse
from engine.resources import BUNDLED_GUIDELINE
from engine.run.actions import constant_facts
from engine.run.durable import Ruleset
from engine.run.evaluate import run
from engine.run.input import NO_FACTS, check_facts
from engine.run.result import Result
from engine.run.row import Row, run_row, without_missing
from engine.run.what_if import what_if as _what_if
from engine.run.why_not import checked_codes, why_not_ruleset
from engine.run.why_not import explain as _why_not


class AuditSink(Protocol):
    """Where evaluations are recorded (engine.products.audit.AuditLog is the real one)."""

    def append(self, guideline: dict[str, str], facts: dict[str, Any], result: Result) -> object: ...


def validate(path: Path | str | None = None) -> list[Problem]:
    """Every schema and semantic problem of a guideline folder, sorted; [] when valid."""
    return sorted(set(analyse(path).problems))


class Guideline:
    """A loaded, compiled guideline. Thread-safe; evaluate as many patients as you like."""

    def __init__(self, content: Content, program: Program, digest: str, path: Path):
        self.content = content
        self.program = program
        self.digest = digest
        self.path = path
        self._ruleset = Ruleset(program.definition, constant_facts(program))
        weakref.finalize(self, self._ruleset.close)
        self._why_not = why_not_ruleset(content, program)  # built on the first why-not question
        weakref.finalize(self, self._why_not.close)
        self._without_missing = without_missing(program)  # built on the first row without `missing`
        weakref.finalize(self, self._without_missing.close)

    def __reduce__(self) -> tuple[Any, tuple[dict[str, str], str, str]]:
        """Pickled by content, not by its C handle (a durable_rules ruleset cannot be pickled):
        the folder's files and the digest; unpickling rebuilds and checks the digest (Dask
        workers, engine/cohort/)."""
        return _rebuild, (folder_texts(self.path), self.digest, str(self.path))

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

    def evaluate(self, facts: Mapping[str, Any], audit_log: AuditSink | None = None, *,
                 what_if: bool = False, why_not: Sequence[str] = ()) -> Result:
        """Recommendations for one patient's facts (contract section 4 names and units).

        `what_if`: also what each missing fact's decision-relevant values would add and remove;
        `why_not`: also why each of these catalogue codes fired, did not fire or is undetermined
        (contract section 8). Raises InputFactsError (every problem with the input, nothing
        evaluated), UnknownCodeError (a why-not code the catalogue lacks) or RuleEngineError (the
        evaluation failed; no partial result). With `audit_log`, the result is returned only once
        its line is durably appended (AuditLogError otherwise).
        """
        codes = checked_codes(self.content, why_not)  # before anything runs, like the facts
        canonical, converted = check_facts(self.content, facts)
        if codes:  # the same result, from the ruleset that also reports each rule's false parts
            result = _why_not(self.content, self._why_not, canonical, self.info, converted, codes)
        else:
            result = self._run(canonical, converted)
        if what_if:
            result = dataclasses.replace(result, what_if=_what_if(
                self.content, result, canonical, lambda changed: self._run(*check_facts(self.content, changed))))
        if not canonical:  # `{}` or only nulls: evaluated, but said, never silent
            result = dataclasses.replace(result, notes=(NO_FACTS,))
        if audit_log is not None:
            audit_log.append(self.info, canonical, result)
        return result

    def evaluate_row(self, facts: Mapping[str, Any], *, missing: bool = True) -> Row:
        """One patient's codes, derived facts, applicability status and (with `missing`) missing
        fact names, equal to `evaluate(facts)`'s, without explanations: the lean evaluation for
        cohorts. Raises as `evaluate` does (InputFactsError, RuleEngineError)."""
        canonical, converted = check_facts(self.content, facts)
        program, ruleset = (self.program, self._ruleset) if missing else self._without_missing.get()
        row = run_row(self.content, program, ruleset, canonical, converted, missing)
        return row if canonical else dataclasses.replace(row, notes=(NO_FACTS,))  # as evaluate says it

    def _run(self, canonical: dict[str, Any], converted: dict[str, float]) -> Result:
        return run(self.content, self.program, self._ruleset, canonical, self.info, converted)


def load(path: Path | str | None = None) -> Guideline:
    """Load, validate and compile a guideline folder (None = the bundled neutropenia guideline)."""
    folder = Path(path) if path is not None else BUNDLED_GUIDELINE
    analysis = analyse(folder)
    if analysis.problems:
        raise GuidelineInvalidError(analysis.problems)
    assert analysis.content is not None and analysis.program is not None
    return Guideline(analysis.content, analysis.program, analysis.digest, folder)


def _rebuild(texts: dict[str, str], digest: str, label: str) -> Guideline:
    """A pickled Guideline: its files laid out in a temporary folder, analysed and compiled again;
    RuleEngineError unless the result has exactly the shipped digest (a changed or tampered copy
    never evaluates under the name of the original)."""
    with tempfile.TemporaryDirectory(prefix="guideline-") as tmp:
        folder = Path(tmp)
        for name, text in texts.items():
            target = folder / name
            if not target.resolve().is_relative_to(folder.resolve()) or ".." in Path(name).parts:
                raise RuleEngineError(f"the shipped guideline {label} names a file outside its folder: {name!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        analysis = analyse(folder)
    if analysis.problems or analysis.content is None or analysis.program is None:
        raise RuleEngineError(f"the shipped guideline {label} does not rebuild: "
                              + "; ".join(p.message for p in analysis.problems[:3]))
    if analysis.digest != digest:
        raise RuleEngineError(f"the shipped guideline {label} rebuilds with digest {analysis.digest}, not "
                              f"{digest}: its files changed after it was loaded, or were altered on the way")
    return Guideline(analysis.content, analysis.program, analysis.digest, Path(label))
