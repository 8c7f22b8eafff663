"""The cohort commands' parsed arguments -> a run: `guideline cohort` and `guideline diff --cohort`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TextIO

from engine.cohort.command import Options, command
from engine.cohort.diffing import impact
from engine.guideline import Guideline
from engine.products.diff.results import Diff


def options(args: argparse.Namespace, source: str) -> Options:
    return Options(source, workers=args.workers, scheduler=args.scheduler, as_of=args.as_of,
                   facts=Path(args.facts) if args.facts else None,
                   summary=Path(args.summary) if getattr(args, "summary", None) else None,
                   missing=not getattr(args, "no_missing", False))


def cohort(guideline: Guideline, args: argparse.Namespace, out: TextIO, err: TextIO, stdin: Any) -> int:
    return command(guideline, options(args, args.input), args.output, out, err, stdin, args.format)


def with_cohort(diff: Diff, args: argparse.Namespace, old: Path, new: Path, stdin: Any) -> Diff:
    """The diff with its `cohort` block: both versions evaluated on the patients of `--cohort INPUT`."""
    return dataclasses.replace(diff, cohort=impact(old, new, options(args, args.cohort), stdin))
