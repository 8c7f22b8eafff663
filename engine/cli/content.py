"""The editors' commands: validate, test (and --mutate), check, release, diff, render."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from engine.cli.common import UsageError, count, folder_of
from engine.errors import BAD_INPUT, FAILED, OK, BadInputError
from engine.guideline import BUNDLED_GUIDELINE, Guideline, load
from engine.products import release as _release
from engine.products.cases import all_rule_ids, load_cases, run_case
from engine.products.check.report import run_check
from engine.products.diff import compare as _diff
from engine.products.diff import gitrev as _gitrev
from engine.products.diff import report as _diffreport
from engine.products.mutate import session as _mutate
from engine.products.render.document import render


def _content_counts(guideline: Guideline) -> tuple[list[str], list[str]]:
    """(rule ids, score ids) as the coverage of `guideline test` counts them.

    validate and test name the same set: coverage counts every rule *and* every score (a score
    is evaluated like a rule and a case can leave it unexercised), so "48 rules, 1 score" in
    validate is the "48/48 rules and 1/1 score" of test, not a 49-vs-48 disagreement.
    """
    rules = [rule.id for rule in guideline.content.rules]
    scores = [i for i in all_rule_ids(guideline) if i not in set(rules)]
    return rules, scores


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = folder_of(args)
    problems = _release.validate(folder, release=args.release)
    out.writelines(f"{problem}\n" for problem in problems)
    if problems:
        err.write(f"{len(problems)} problem(s) in {folder}\n")
        return BAD_INPUT
    guideline = load(folder)
    rules, scores = _content_counts(guideline)
    out.write(f"{folder}: valid — {guideline.id} {guideline.version}, {count(len(rules), 'rule')}, "
              f"{count(len(scores), 'score')}, {count(len(guideline.content.catalogue), 'code')}, "
              f"{guideline.digest}\n")
    if args.release:
        entry = next(r for r in _release.read_releases(folder)[1] if r.version == guideline.version)
        out.write(f"release check passed: version {guideline.version} has the digest recorded {entry.recorded}"
                  f"{f' by {entry.by}' if entry.by else ''}\n")
    return OK


def cmd_test(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = folder_of(args)
    if args.mutate or args.min_score is not None or args.workers is not None or args.format != "text":
        if not args.mutate:
            raise UsageError(args.parser, "--min-score, --workers and --format apply to --mutate")
        return _mutate.command(folder, fmt=args.format, min_score=args.min_score, workers=args.workers,
                               out=out, err=err)
    guideline = load(folder)
    cases, problems = load_cases(folder, guideline)
    if problems:
        out.writelines(f"{problem}\n" for problem in sorted(problems))
        return BAD_INPUT
    fired: set[str] = set()
    failed = 0
    for case in cases:
        outcome = run_case(guideline, case)
        fired |= outcome.rules_fired
        out.write(f"{'PASS' if outcome.passed else 'FAIL'}  {case.id}\n")
        out.writelines(f"      {case.file}:{case.line}: {failure}\n" for failure in outcome.failures)
        failed += not outcome.passed
    rules, scores = _content_counts(guideline)
    everything = sorted(rules + scores)
    coverage = 100.0 * sum(i in fired for i in everything) / len(everything) if everything else 100.0
    out.write(f"\n{len(cases) - failed} passed, {failed} failed, {len(cases)} cases\n")
    out.write(f"rule coverage: {sum(r in fired for r in rules)}/{count(len(rules), 'rule')} and "
              f"{sum(s in fired for s in scores)}/{count(len(scores), 'score')} fired in some case "
              f"({coverage:.1f}%)\n")
    for rule in everything:
        if rule not in fired:
            out.write(f"  never fired: {rule}\n")
    if failed:
        return FAILED
    if args.min_coverage is not None and coverage < args.min_coverage:
        err.write(f"rule coverage {coverage:.1f}% is below --min-coverage {args.min_coverage:g}%\n")
        return FAILED
    return OK


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = folder_of(args)
    return run_check(load(folder), args.format, out)


def cmd_release(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = folder_of(args)
    recorded = _release.record(folder, by=args.by)  # refusals and write failures carry their exit codes
    r = recorded.release
    verb = "already recorded" if recorded.already else "recorded"
    out.write(f"{folder}: version {r.version} {verb} in {recorded.file.name}: {r.digest} ({r.recorded}"
              f"{f', by {r.by}' if r.by else ''})\n")
    return OK


def cmd_diff(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Semantic + behavioural diff of two guideline versions; 1 when the version bump breaks the policy."""
    old = args.old
    if args.guideline:
        # --guideline names the one folder --rev takes at two revisions; OLD NEW are two folders.
        if args.rev is None:
            raise UsageError(args.parser, "--guideline DIR goes with --rev (without it, give OLD NEW)")
        if old and Path(old).resolve() != Path(args.guideline).resolve():
            raise UsageError(args.parser, f"the guideline folder is given twice, as DIR ({old}) and as "
                                          f"--guideline ({args.guideline}); give one")
        old = args.guideline
    if not args.cohort and (args.workers or args.scheduler or args.as_of or args.facts):
        raise UsageError(args.parser, "--workers, --scheduler, --as-of and --facts go with --cohort INPUT")
    with _gitrev.sources(old, args.new, args.rev, BUNDLED_GUIDELINE) as (before, after):
        diff = _diff.compare(before.folder, after.folder, before.label, after.label)
        if args.cohort:  # the same patients as `guideline cohort` reads, on Dask (engine/cohort/diffing.py)
            from engine.cohort import arguments

            diff = arguments.with_cohort(diff, args, before.folder, after.folder, stdin)
    out.write(_diffreport.RENDER[args.format](diff))
    return OK if diff.version_check.ok else FAILED


def cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """The guideline as one document for clinical review (HTML or Markdown)."""
    document = render(folder_of(args), args.format)
    if not args.output:
        out.write(document)
        return OK
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:  # the file the command writes is named where it is written
        raise BadInputError(f"cannot write {args.output}: {exc.strerror}") from exc
    return OK
