"""`guideline diff`: what changed between two versions of a guideline, in meaning and in behaviour.

Three stages on two loaded guidelines: the semantic diff (semantic.py), the behavioural diff on
clinical cases and boundary patients (behaviour.py, boundaries.py) and the version check
(versions.py). The results are the frozen data of results.py, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.errors import BadInputError, Problem
from engine.guideline import Guideline
from engine.loader.folder import display_name
from engine.pipeline import analyse
from engine.products.cases import Case, load_cases
from engine.products.diff.behaviour import behaviour_diff
from engine.products.diff.boundaries import BASES_PER_FACT
from engine.products.diff.results import (
    LEVELS,
    MAJOR,
    MINOR,
    NONE,
    PATCH,
    Behaviour,
    Change,
    DerivedChange,
    Diff,
    PatientChange,
    Side,
    VersionCheck,
)
from engine.products.diff.semantic import semantic_diff
from engine.products.diff.versions import version_check

__all__ = ["BASES_PER_FACT", "LEVELS", "MAJOR", "MINOR", "NONE", "PATCH", "Behaviour", "Change", "DerivedChange",
           "Diff", "PatientChange", "Side", "SideInvalidError", "VersionCheck", "behaviour_diff", "compare",
           "load_side", "semantic_diff", "version_check"]


class SideInvalidError(BadInputError):
    """One of the two guideline versions does not load; its problems name the version's label."""

    def __init__(self, label: str, problems: Iterable[Problem]):
        self.label = label
        self.problems = sorted(set(problems))
        super().__init__(f"{label}: the guideline is invalid")

    def report(self) -> list[str]:
        return [*map(str, self.problems), f"error: {self}"]


def _relabel(problems: Iterable[Problem], folder: Path, label: str) -> list[Problem]:
    """Problems of a temporary checkout name the revision, not the temporary directory."""
    prefix = display_name(folder, folder)
    if label == prefix:
        return list(problems)
    return [Problem(label + p.file[len(prefix):] if p.file.startswith(prefix) else p.file, p.line, p.col, p.code,
                    p.message) for p in problems]


def load_side(folder: Path, label: str | None = None) -> tuple[Guideline, list[Case], Side]:
    """A version to compare: the guideline, its clinical cases, and how to name it. Raises SideInvalidError."""
    label = label or str(folder)
    analysis = analyse(folder)
    if analysis.problems:
        raise SideInvalidError(label, _relabel(analysis.problems, folder, label))
    assert analysis.content is not None and analysis.program is not None
    digest = analysis.digest
    guideline = Guideline(analysis.content, analysis.program, digest, folder)
    # Malformed case files are `guideline test`'s business; the diff uses the cases that load.
    cases, _ = load_cases(folder, guideline)
    return guideline, cases, Side(guideline.id, guideline.version, digest, label)


def compare(old_folder: Path, new_folder: Path, old_label: str | None = None, new_label: str | None = None,
            bases_per_fact: int | None = None) -> Diff:
    """The semantic and behavioural diff of two guideline folders, and the version check."""
    # Read at call time, so a caller (or a test) may set this module's BASES_PER_FACT.
    bases_per_fact = BASES_PER_FACT if bases_per_fact is None else bases_per_fact
    old, old_cases, old_side = load_side(old_folder, old_label)
    new, new_cases, new_side = load_side(new_folder, new_label)
    semantic = semantic_diff(old.content, new.content)
    behaviour = behaviour_diff(old, new, old_cases, new_cases, bases_per_fact)
    return Diff(old_side, new_side, semantic, behaviour, version_check(old_side, new_side, semantic, behaviour))
