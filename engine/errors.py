"""Error types; each carries the exit code the CLI returns for it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One located finding: prints as `FILE:LINE:COL: code: message`."""

    file: str
    line: int
    col: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.code}: {self.message}"


class EngineError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1


class GuidelineInvalidError(EngineError):
    """The guideline folder failed schema or semantic validation."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))


class InputFactsError(EngineError):
    """A patient's facts were rejected; every problem names the fact and why."""

    exit_code = 2

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class RuleEngineError(EngineError):
    """durable_rules or a rule action failed: the evaluation is void (internal error)."""

    exit_code = 1


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest known name, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
