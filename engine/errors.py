"""Every error a person can see: located problems and one exception hierarchy with exit codes.

The CLI maps an exception to its exit code in one place (`EngineError.exit_code`) and prints
`EngineError.report()`; the CDS Hooks service maps the same classes to HTTP statuses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# Exit codes of the `guideline` command (contract section 1).
OK, FAILED, BAD_INPUT = 0, 1, 2

# At most this many input problems are kept and reported, then "… and K more": 3,000,000 unknown
# names once cost 214 s (a did-you-mean each) and 88 MB of stderr.
MAX_PROBLEMS = 20
# Text from the input (a name, a value) is shown at most this long in a message.
MAX_ECHO = 80


@dataclass(frozen=True, order=True)
class Problem:
    """One located finding in a guideline file: prints as `FILE:LINE:COL: code: message`."""

    file: str
    line: int
    col: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.code}: {self.message}"


@dataclass(frozen=True, order=True)
class InputProblem:
    """One problem with an input: `where` names the fact, the JSON path or the file and line
    (`anc`, `entry[3].resource.valueQuantity`, `patient.json:4:7`); prints as `where: message`."""

    where: str
    message: str

    def __str__(self) -> str:
        # Escaped here, for every surface: a name from the input may hold a newline or a terminal
        # escape sequence that would forge or hide lines of the report.
        where, message = escape(self.where), escape(self.message)
        return f"{where}: {message}" if where else message


class EngineError(Exception):
    """Base class. `exit_code` is what the CLI exits with; `report()` is what it prints."""

    exit_code = FAILED

    def report(self) -> list[str]:
        """The lines a person reads on stderr."""
        label = "internal error" if self.exit_code == FAILED else "error"
        return [f"{label}: {self}"]


class BadInputError(EngineError):
    """Something the caller gave was unusable (a file, a flag's value, a configuration)."""

    exit_code = BAD_INPUT


class GuidelineInvalidError(BadInputError):
    """The guideline folder failed schema or semantic validation."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))

    def report(self) -> list[str]:
        return [*map(str, self.problems), "the guideline is invalid; run `guideline validate` for details"]


class InputFactsError(BadInputError):
    """A patient's facts were rejected; every problem names the fact (or JSON path) and why.

    `problems` keeps the first MAX_PROBLEMS; `omitted` counts the others (a producer that stopped
    collecting early passes how many it skipped)."""

    def __init__(self, problems: Iterable[InputProblem], omitted: int = 0):
        given = list(problems)
        self.problems = given[:MAX_PROBLEMS]
        self.omitted = omitted + len(given) - len(self.problems)
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """Each kept problem, then '… and K more problems' when some were omitted."""
        more = [f"… and {self.omitted} more problem{'s' if self.omitted != 1 else ''}"] if self.omitted else []
        return [*map(str, self.problems), *more]

    def report(self) -> list[str]:
        return [f"error: {line}" for line in self.lines()]


class ConfigError(BadInputError):
    """A configuration the caller supplied (service settings, trusted issuers) is unusable."""


class RuleEngineError(EngineError):
    """durable_rules or a rule action failed: the evaluation is void (internal error)."""


def escape(text: str) -> str:
    """`text` with every non-printable character (control, format, separator) as a \\x / \\u escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def echo(text: str, limit: int = MAX_ECHO) -> str:
    """Input text as a message quotes it: escaped, and cut to `limit` characters (with its length)."""
    if len(text) <= limit:
        return escape(text)
    return f"{escape(text[:limit])}… ({len(text)} characters)"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest known name, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
