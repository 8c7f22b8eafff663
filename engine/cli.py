"""The `guideline` command: evaluate | validate | test. Each subcommand returns its exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import _text
from ._cases import all_rule_ids, load_cases, run_case
from ._errors import EngineError, GuidelineInvalidError, InputFactsError
from ._guideline import BUNDLED_GUIDELINE, load, validate

OK, FAILED, BAD_INPUT = 0, 1, 2


def _read_patient(source: str, stdin: TextIO) -> Any:
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFactsError([f"cannot read {source}: {exc.strerror}"]) from exc
    try:
        # NaN / Infinity parse as floats so the fact check can name the fact they were given for.
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise InputFactsError([f"{source}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}"]) from exc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON allows a key twice and keeps the last: for a patient that hides a value (an ANC of
    0.3 overridden by 2.0), so it is an input error."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputFactsError([f"{key}: given twice in the same JSON object"])
        seen[key] = value
    return seen


def cmd_evaluate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    guideline = load(args.guideline)
    facts = _read_patient(args.file, stdin)
    result = guideline.evaluate(facts)
    if args.format == "json":
        json.dump(result.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write(_text.evaluation(guideline, result))
    return OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = Path(args.dir) if args.dir else BUNDLED_GUIDELINE
    problems = validate(folder)
    for problem in problems:
        out.write(f"{problem}\n")
    if problems:
        err.write(f"{len(problems)} problem(s) in {folder}\n")
        return BAD_INPUT
    guideline = load(folder)
    out.write(f"{folder}: valid — {guideline.id} {guideline.version}, {len(guideline.content.rules)} rules, "
              f"{len(guideline.content.catalogue)} codes, {guideline.digest}\n")
    return OK


def cmd_test(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = Path(args.dir) if args.dir else BUNDLED_GUIDELINE
    guideline = load(folder)
    cases, problems = load_cases(folder, guideline)
    if problems:
        for problem in sorted(problems):
            out.write(f"{problem}\n")
        return BAD_INPUT
    fired: set[str] = set()
    failed = 0
    for case in cases:
        outcome = run_case(guideline, case)
        fired |= outcome.rules_fired
        out.write(f"{'PASS' if outcome.passed else 'FAIL'}  {case.id}\n")
        for failure in outcome.failures:
            out.write(f"      {case.file}:{case.line}: {failure}\n")
        failed += not outcome.passed
    rules = all_rule_ids(guideline)
    covered = [r for r in rules if r in fired]
    coverage = 100.0 * len(covered) / len(rules) if rules else 100.0
    out.write(f"\n{len(cases) - failed} passed, {failed} failed, {len(cases)} cases\n")
    out.write(f"rule coverage: {len(covered)}/{len(rules)} rules fired in some case ({coverage:.1f}%)\n")
    for rule in rules:
        if rule not in fired:
            out.write(f"  never fired: {rule}\n")
    if failed:
        return FAILED
    if args.min_coverage is not None and coverage < args.min_coverage:
        err.write(f"rule coverage {coverage:.1f}% is below --min-coverage {args.min_coverage:g}%\n")
        return FAILED
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guideline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("evaluate", help="evaluate one patient's facts (JSON; - = stdin)")
    p.add_argument("file")
    p.add_argument("--guideline", metavar="DIR", help="guideline folder (default: the bundled neutropenia one)")
    p.add_argument("--format", choices=("json", "text"), default="text")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("validate", help="schema and semantic checks of a guideline folder")
    p.add_argument("dir", nargs="?")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("test", help="run the guideline's clinical test cases and report rule coverage")
    p.add_argument("dir", nargs="?")
    p.add_argument("--min-coverage", type=float, metavar="PCT", help="fail below this rule coverage")
    p.set_defaults(func=cmd_test)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure / internal error, 2 bad input)."""
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    parser = _parser()
    try:
        # argparse prints usage errors and --help itself: send them to the caller's streams.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args, out, err, stdin))
    except GuidelineInvalidError as exc:
        for problem in exc.problems:
            err.write(f"{problem}\n")
        err.write("the guideline is invalid; run `guideline validate` for details\n")
        return BAD_INPUT
    except InputFactsError as exc:
        for message in exc.problems:
            err.write(f"error: {message}\n")
        return BAD_INPUT
    except EngineError as exc:
        err.write(f"internal error: {exc}\n")
        return FAILED
