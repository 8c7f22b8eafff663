"""What every subcommand shares: reading JSON input, the guideline folder, usage errors, counts."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from engine.errors import BadInputError, InputFactsError
from engine.fhir.dates import as_of_date
from engine.guideline import BUNDLED_GUIDELINE
from engine.run import json_input


def read_json(source: str, stdin: TextIO, *, facts: bool = True) -> Any:
    """JSON from a file or `-`, bounded in size, depth and numbers (engine/run/json_input.py). For
    patient facts a key given twice is left for the fact check to report with every other problem;
    in a FHIR Bundle it is refused at once."""
    return json_input.read(source, stdin, keep_duplicates=facts)


class UsageError(BadInputError):
    """A combination of arguments argparse cannot express; printed like argparse's own usage errors."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        self.parser = parser
        super().__init__(message)

    def report(self) -> list[str]:
        return [*self.parser.format_usage().rstrip("\n").split("\n"), f"{self.parser.prog}: error: {self}"]


def folder_of(args: argparse.Namespace) -> Path:
    """The guideline folder: positional DIR (kept for existing scripts) or --guideline DIR, the same on
    every command; both with different values is a usage error; neither is the bundled guideline."""
    given = [value for value in (getattr(args, "dir", None), args.guideline) if value]
    if len(given) == 2 and Path(given[0]).resolve() != Path(given[1]).resolve():
        raise UsageError(args.parser, f"the guideline folder is given twice, as DIR ({given[0]}) and as "
                                      f"--guideline ({given[1]}); give one")
    return Path(given[0]) if given else BUNDLED_GUIDELINE


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"



def iso_date(text: str) -> date:
    """--as-of YYYY-MM-DD (the one ISO-date parser, engine/fhir/dates.py); else a usage error (exit 2)."""
    try:
        return as_of_date(text)
    except InputFactsError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].message) from exc
