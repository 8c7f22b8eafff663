"""The `guideline` command: one function per subcommand returns its exit code; main() maps errors once."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from engine.cohort.flags import add_cohort_flags
from engine.errors import (
    BAD_INPUT,
    FAILED,
    OK,
    BadInputError,
    EngineError,
    InputFactsError,
)
from engine.fhir.dates import as_of_date
from engine.fhir.reader import read_fhir
from engine.guideline import BUNDLED_GUIDELINE, Guideline, load
from engine.products import audit as _audit
from engine.products import release as _release
from engine.products import text as _text
from engine.products.cases import all_rule_ids, load_cases, run_case
from engine.products.diff import compare as _diff
from engine.products.diff import gitrev as _gitrev
from engine.products.diff import report as _diffreport
from engine.products.render.document import FORMATS as RENDER_FORMATS
from engine.products.render.document import render
from engine.run import json_input


def _read_patient(source: str, stdin: TextIO, *, facts: bool = True) -> Any:
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


def _folder(args: argparse.Namespace) -> Path:
    """The guideline folder: positional DIR (kept for existing scripts) or --guideline DIR, the same on
    every command; both with different values is a usage error; neither is the bundled guideline."""
    given = [value for value in (getattr(args, "dir", None), args.guideline) if value]
    if len(given) == 2 and Path(given[0]).resolve() != Path(given[1]).resolve():
        raise UsageError(args.parser, f"the guideline folder is given twice, as DIR ({given[0]}) and as "
                                      f"--guideline ({given[1]}); give one")
    return Path(given[0]) if given else BUNDLED_GUIDELINE


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"



def _iso_date(text: str) -> date:
    """--as-of YYYY-MM-DD (the one ISO-date parser, engine/fhir/dates.py); else a usage error (exit 2)."""
    try:
        return as_of_date(text)
    except InputFactsError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].message) from exc


def _fhir_facts(args: argparse.Namespace, guideline: Guideline, err: TextIO, stdin: TextIO) -> dict[str, Any]:
    """Facts from --fhir BUNDLE (+ --facts EXTRA); what was read and skipped goes to stderr."""
    bundle = _read_patient(args.fhir, stdin, facts=False)
    extra = _read_patient(args.facts, stdin) if args.facts else None
    read = read_fhir(bundle, guideline.content, extra=extra, as_of=args.as_of,
                     include_preliminary=args.include_preliminary)
    err.writelines(f"note: {line}\n" for line in read.summary())
    return read.facts


def cmd_evaluate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    # Usage errors argparse cannot express (FILE is optional only when --fhir is given): exit 2.
    if (args.file is None) == (args.fhir is None):
        raise UsageError(args.parser, "give exactly one of FILE or --fhir BUNDLE")
    if args.fhir is None and (args.facts or args.as_of or args.include_preliminary):
        raise UsageError(args.parser, "--facts, --as-of and --include-preliminary go with --fhir")
    guideline = load(args.guideline)  # None: the bundled guideline, exactly as the API loads it
    facts = _read_patient(args.file, stdin) if args.fhir is None else _fhir_facts(args, guideline, err, stdin)
    if args.audit_log:  # no result unless its audit line is written
        result = guideline.evaluate(facts, audit_log=_audit.AuditLog(args.audit_log))
    else:
        result = guideline.evaluate(facts)
    err.writelines(f"note: {note}\n" for note in result.notes)
    if args.format == "json":
        json.dump(result.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write(_text.evaluation(guideline, result))
    return OK


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
    folder = _folder(args)
    problems = _release.validate(folder, release=args.release)
    out.writelines(f"{problem}\n" for problem in problems)
    if problems:
        err.write(f"{len(problems)} problem(s) in {folder}\n")
        return BAD_INPUT
    guideline = load(folder)
    rules, scores = _content_counts(guideline)
    out.write(f"{folder}: valid — {guideline.id} {guideline.version}, {_count(len(rules), 'rule')}, "
              f"{_count(len(scores), 'score')}, {_count(len(guideline.content.catalogue), 'code')}, "
              f"{guideline.digest}\n")
    if args.release:
        entry = next(r for r in _release.read_releases(folder)[1] if r.version == guideline.version)
        out.write(f"release check passed: version {guideline.version} has the digest recorded {entry.recorded}"
                  f"{f' by {entry.by}' if entry.by else ''}\n")
    return OK


def cmd_test(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = _folder(args)
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
    out.write(f"rule coverage: {sum(r in fired for r in rules)}/{_count(len(rules), 'rule')} and "
              f"{sum(s in fired for s in scores)}/{_count(len(scores), 'score')} fired in some case "
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


def cmd_release(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = _folder(args)
    recorded = _release.record(folder, by=args.by)  # refusals and write failures carry their exit codes
    r = recorded.release
    verb = "already recorded" if recorded.already else "recorded"
    out.write(f"{folder}: version {r.version} {verb} in {recorded.file.name}: {r.digest} ({r.recorded}"
              f"{f', by {r.by}' if r.by else ''})\n")
    return OK


def cmd_audit_verify(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    outcome = _audit.verify(args.log, expect_head=args.expect_head)
    # valid, but never silent: each repair removed bytes from the log
    out.writelines(f"{args.log}:{repair.line}:1: {repair.message()}\n" for repair in outcome.repairs)
    if not outcome.valid:
        out.write(f"{args.log}:{outcome.line}:1: {outcome.code}: {outcome.reason}\n")
        err.write(f"audit log broken at line {outcome.line}; the {outcome.count} line(s) before it verify\n")
        return FAILED
    out.write(f"{args.log}: valid — {outcome.count} line(s), chain head {outcome.head}\n")
    if args.expect_head is not None:
        out.write(f"{args.log}: the expected chain head is line {outcome.head_line}\n")
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


def cmd_cohort(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Many patients (NDJSON or a FHIR Bulk Data export) evaluated in parallel on Dask (engine/cohort/)."""
    from engine.cohort import arguments  # Dask is imported by the cohort commands only

    return arguments.cohort(load(_folder(args)), args, out, err, stdin)


def cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """The guideline as one document for clinical review (HTML or Markdown)."""
    document = render(_folder(args), args.format)
    if not args.output:
        out.write(document)
        return OK
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:  # the file the command writes is named where it is written
        raise BadInputError(f"cannot write {args.output}: {exc.strerror}") from exc
    return OK


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """The CDS Hooks 2.0 service (docs/cds-hooks.md); returns when the server stops."""
    # Starlette and uvicorn are imported only by `serve`.
    from engine.cds.app import serve
    from engine.cds.config import CdsConfig

    config = CdsConfig(
        guideline=Path(args.guideline) if args.guideline else None, host=args.host, port=args.port,
        public_url=args.public_url, trusted_issuers=Path(args.trusted_issuers) if args.trusted_issuers else None,
        dev_no_auth=args.dev_no_auth, audit_log=Path(args.audit_log) if args.audit_log else None,
        max_body_bytes=args.max_body_bytes, allow_http_fhir=args.allow_http_fhir)
    serve(config)  # a refused configuration raises an EngineError with exit code 2
    return OK


GUIDELINE_HELP = "guideline folder (default: the bundled guidelines/neutropenia)"


def _command(sub: Any, name: str, func: Any, summary: str, *, folder: str | None = None) -> argparse.ArgumentParser:
    """One subcommand. folder="dir" adds the positional DIR and --guideline DIR; "flag" only --guideline."""
    # No help= here: the top-level description lists the commands (generated below), so argparse's
    # own list of choices would say it twice.
    p: argparse.ArgumentParser = sub.add_parser(name, description=summary[0].upper() + summary[1:] + ".")
    if folder == "dir":
        p.add_argument("dir", nargs="?", metavar="DIR", help="guideline folder, the same as --guideline DIR")
    if folder is not None:
        p.add_argument("--guideline", metavar="DIR", help=GUIDELINE_HELP)
    p.set_defaults(func=func, parser=p)
    return p


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guideline", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 done; 1 a check failed or an internal error; 2 bad input or usage;\n"
               "141 standard output was closed early (`| head`).\n"
               "Every command that reads a guideline takes --guideline DIR (default: the bundled one).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of the commands above; "
                                "`guideline COMMAND --help` for its options")
    p = _command(sub, "evaluate", cmd_evaluate, "evaluate one patient's facts (JSON; - = stdin)", folder="flag")
    p.add_argument("file", nargs="?", metavar="FILE", help="patient facts (JSON; - = stdin); or use --fhir")
    p.add_argument("--format", choices=("json", "text"), default="text", help="output format (default text)")
    p.add_argument("--fhir", metavar="BUNDLE", help="read the facts from a FHIR R4 Bundle / resource(s) (JSON)")
    p.add_argument("--facts", metavar="EXTRA", help="with --fhir: facts FHIR does not carry (JSON object)")
    p.add_argument("--as-of", type=_iso_date, metavar="YYYY-MM-DD",
                   help="with --fhir: date for ages and the latest Observation counted (default: today, UTC)")
    p.add_argument("--include-preliminary", action="store_true",
                   help="with --fhir: also use preliminary Observations")
    p.add_argument("--audit-log", metavar="LOG", help="append this evaluation to a hash-chained audit log")
    p = _command(sub, "validate", cmd_validate, "schema and semantic checks of a guideline folder", folder="dir")
    p.add_argument("--release", action="store_true",
                   help="also require: approved, reviewers, effective date, the digest recorded for its version")
    p = _command(sub, "test", cmd_test, "run the guideline's clinical test cases and report rule coverage",
                 folder="dir")
    p.add_argument("--min-coverage", type=float, metavar="PCT", help="fail below this rule coverage")
    p = _command(sub, "release", cmd_release, "record the current version's content digest in releases.yaml",
                 folder="dir")
    p.add_argument("--by", metavar="NAME", help="who records the release")
    p = _command(sub, "audit", None, "audit log tools")
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="verify", help="check every line and "
                             "the hash chain of an audit log")
    p = _command(audit, "verify", cmd_audit_verify, "check every line and the hash chain of an audit log")
    p.add_argument("log", metavar="LOG", help="the audit log file")
    p.add_argument("--expect-head", metavar="SHA", help="a chain head kept elsewhere (printed by an earlier "
                   "verify): broken unless a line has that hash, so lines cut off the end are found")
    p = _command(sub, "diff", cmd_diff, "what changed between two guideline versions, and is the version bump "
                 "right", folder="flag")
    p.add_argument("old", nargs="?", metavar="OLD", help="old guideline folder (with --rev: the folder, like "
                   "--guideline)")
    p.add_argument("new", nargs="?", metavar="NEW", help="new guideline folder")
    p.add_argument("--rev", metavar="REV1..REV2", help="compare one folder at two git revisions (REV1.. = with the "
                   "working tree)")
    p.add_argument("--format", choices=tuple(_diffreport.RENDER), default="text", help="output format "
                   "(default text)")
    add_cohort_flags(p, _iso_date, diff=True)
    p = _command(sub, "cohort", cmd_cohort, "evaluate many patients (NDJSON or a FHIR Bulk Data export) in "
                 "parallel on Dask", folder="flag")
    p.add_argument("input", metavar="INPUT", help="NDJSON, one {\"id\", \"facts\"} per line (- = stdin), or a "
                   "FHIR Bulk Data export folder (Patient.ndjson, Observation.ndjson, ...)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the rows (NDJSON) to OUT instead of standard output")
    p.add_argument("--summary", metavar="FILE", help="also write counts and charts to FILE.html or FILE.json")
    add_cohort_flags(p, _iso_date)
    p = _command(sub, "render", cmd_render, "the guideline as one HTML (or Markdown) document for clinical review",
                 folder="dir")
    p.add_argument("--format", choices=RENDER_FORMATS, default="html", help="output format (default html)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p = _command(sub, "serve", cmd_serve, "run the CDS Hooks 2.0 service (patient-view, order-select, feedback)",
                 folder="flag")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to bind (default 8080; 0 = any free port)")
    p.add_argument("--public-url", metavar="URL", help="base URL the EHR calls (the tokens' aud is checked "
                   "against URL/cds-services/...)")
    p.add_argument("--trusted-issuers", metavar="FILE", help="JSON/YAML file: trusted token issuers and their "
                   "public keys")
    p.add_argument("--dev-no-auth", action="store_true", help="accept requests without a token (local "
                   "development only; refused unless --host is a loopback address)")
    p.add_argument("--audit-log", metavar="LOG", help="append every evaluation, its cards and all feedback to "
                   "a hash-chained audit log")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="N",
                   help="largest request body accepted (default 1 MiB; larger: HTTP 413); also the most data "
                   "fetched from the EHR's FHIR server for one hook call")
    p.add_argument("--allow-http-fhir", action="store_true", help="also fetch absent prefetch from an http:// "
                   "fhirServer (the EHR's token then travels unencrypted; for local tests only)")
    # Generated from the subparsers, so a new command cannot be left out of `guideline --help`.
    parser.description = "Commands:\n" + "\n".join(f"  {line}" for line in _command_lines(sub))
    return parser


def _command_lines(sub: Any, prefix: str = "") -> list[str]:
    """'name  summary' for every subcommand, nested ones (audit verify) spelled out in full."""
    lines = []
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            lines += _command_lines(nested[0], f"{prefix}{name} ")
        else:
            lines.append(f"{prefix + name:<14}{child.description[0].lower()}{child.description[1:-1]}")
    return lines


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
        try:
            code = int(args.func(args, out, err, stdin))
        except EngineError as exc:  # the one place exceptions become exit codes: each class carries its own
            err.writelines(f"{line}\n" for line in exc.report())
            code = exc.exit_code
        out.flush()  # here, not at exit, so a closed pipe is seen while it can still be handled
        err.flush()
        return code
    except BrokenPipeError:
        return _broken_pipe(out, err)


# What a shell reports for a command killed by SIGPIPE (128 + 13), as `yes | head` gives.
BROKEN_PIPE = 141


def _broken_pipe(out: TextIO, err: TextIO) -> int:
    """The reader of stdout went away (`guideline evaluate … | head`): stop quietly, as Unix tools do.

    Python would print a traceback, then complain again when it flushes stdout at exit; pointing
    the descriptor at /dev/null makes that last flush harmless.
    """
    for stream in (out, err):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a StringIO has no descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    return BROKEN_PIPE
