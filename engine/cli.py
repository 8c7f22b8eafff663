"""The `guideline` command: evaluate | validate | test | release | audit verify | serve. Each returns its exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from engine.errors import (
    BAD_INPUT,
    FAILED,
    OK,
    EngineError,
    InputFactsError,
    InputProblem,
)
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
from engine.run.json_input import no_duplicate_keys


def _read_patient(source: str, stdin: TextIO) -> Any:
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFactsError([InputProblem(source, f"cannot read: {exc.strerror}")]) from exc
    try:
        # NaN / Infinity parse as floats so the fact check can name the fact they were given for.
        return json.loads(text, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise InputFactsError([InputProblem(f"{source}:{exc.lineno}:{exc.colno}", f"malformed JSON: {exc.msg}")]) from exc



def _iso_date(text: str) -> date:
    """--as-of YYYY-MM-DD; anything else is a usage error (exit 2)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}': {exc}") from exc
    raise argparse.ArgumentTypeError(f"'{text}' is not a date YYYY-MM-DD")


def _fhir_facts(args: argparse.Namespace, guideline: Guideline, err: TextIO, stdin: TextIO) -> dict[str, Any]:
    """Facts from --fhir BUNDLE (+ --facts EXTRA); what was read and skipped goes to stderr."""
    bundle = _read_patient(args.fhir, stdin)
    extra = _read_patient(args.facts, stdin) if args.facts else None
    read = read_fhir(bundle, guideline.content, extra=extra, as_of=args.as_of,
                     include_preliminary=args.include_preliminary)
    err.writelines(f"note: {line}\n" for line in read.summary())
    return read.facts


def cmd_evaluate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    # Usage errors argparse cannot express (FILE is optional only when --fhir is given): exit 2.
    if (args.file is None) == (args.fhir is None):
        err.write(f"{args.usage()}guideline evaluate: error: give exactly one of FILE or --fhir BUNDLE\n")
        return BAD_INPUT
    if args.fhir is None and (args.facts or args.as_of or args.include_preliminary):
        err.write(f"{args.usage()}guideline evaluate: error: --facts, --as-of and --include-preliminary go with "
                  "--fhir\n")
        return BAD_INPUT
    guideline = load(args.guideline)
    facts = _read_patient(args.file, stdin) if args.fhir is None else _fhir_facts(args, guideline, err, stdin)
    if args.audit_log:  # no result unless its audit line is written
        result = guideline.evaluate(facts, audit_log=_audit.AuditLog(args.audit_log))
    else:
        result = guideline.evaluate(facts)
    if args.format == "json":
        json.dump(result.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write(_text.evaluation(guideline, result))
    return OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = Path(args.dir) if args.dir else BUNDLED_GUIDELINE
    problems = _release.validate(folder, release=args.release)
    for problem in problems:
        out.write(f"{problem}\n")
    if problems:
        err.write(f"{len(problems)} problem(s) in {folder}\n")
        return BAD_INPUT
    guideline = load(folder)
    out.write(f"{folder}: valid — {guideline.id} {guideline.version}, {len(guideline.content.rules)} rules, "
              f"{len(guideline.content.catalogue)} codes, {guideline.digest}\n")
    if args.release:
        entry = next(r for r in _release.read_releases(folder)[1] if r.version == guideline.version)
        out.write(f"release check passed: version {guideline.version} has the digest recorded {entry.recorded}"
                  f"{f' by {entry.by}' if entry.by else ''}\n")
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


def cmd_release(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    folder = Path(args.dir) if args.dir else BUNDLED_GUIDELINE
    try:
        recorded = _release.record(folder, by=args.by)
    except _release.ReleaseRefusedError as exc:
        for problem in exc.problems:
            out.write(f"{problem}\n")
        err.write(f"release refused: {len(exc.problems)} problem(s) in {folder}\n")
        return BAD_INPUT
    except OSError as exc:
        err.write(f"{folder}: cannot record the release: {exc.strerror or exc}\n")
        return FAILED
    r = recorded.release
    verb = "already recorded" if recorded.already else "recorded"
    out.write(f"{folder}: version {r.version} {verb} in {recorded.file.name}: {r.digest} ({r.recorded}"
              f"{f', by {r.by}' if r.by else ''})\n")
    return OK


def cmd_audit_verify(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    try:
        outcome = _audit.verify(args.log)
    except OSError as exc:
        err.write(f"{args.log}: cannot read: {exc.strerror or exc}\n")
        return BAD_INPUT
    if not outcome.valid:
        out.write(f"{args.log}:{outcome.line}:1: {outcome.code}: {outcome.reason}\n")
        err.write(f"audit log broken at line {outcome.line}; the {outcome.count} line(s) before it verify\n")
        return FAILED
    out.write(f"{args.log}: valid — {outcome.count} line(s), chain head {outcome.head}\n")
    return OK


def cmd_diff(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Semantic + behavioural diff of two guideline versions; 1 when the version bump breaks the policy."""
    try:
        with _gitrev.sources(args.old, args.new, args.rev, BUNDLED_GUIDELINE) as (old, new):
            diff = _diff.compare(old.folder, new.folder, old.label, new.label)
    except (_gitrev.SourceError, _diff.SideInvalidError) as exc:
        for problem in getattr(exc, "problems", ()):
            err.write(f"{problem}\n")
        err.write(f"error: {exc}\n")
        return BAD_INPUT
    out.write(_diffreport.RENDER[args.format](diff))
    return OK if diff.version_check.ok else FAILED


def cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """The guideline as one document for clinical review (HTML or Markdown)."""
    document = render(Path(args.dir) if args.dir else BUNDLED_GUIDELINE, args.format)
    if not args.output:
        out.write(document)
        return OK
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:
        err.write(f"error: cannot write {args.output}: {exc.strerror}\n")
        return BAD_INPUT
    return OK


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """The CDS Hooks 2.0 service (docs/cds-hooks.md); returns when the server stops."""
    from engine.cds import (
        service as _cds,  # Starlette and uvicorn are imported only by `serve`
    )
    from engine.cds.auth import TrustConfigError

    config = _cds.CdsConfig(
        guideline=Path(args.guideline) if args.guideline else None, host=args.host, port=args.port,
        public_url=args.public_url, trusted_issuers=Path(args.trusted_issuers) if args.trusted_issuers else None,
        dev_no_auth=args.dev_no_auth, audit_log=Path(args.audit_log) if args.audit_log else None,
        max_body_bytes=args.max_body_bytes, allow_http_fhir=args.allow_http_fhir)
    try:
        _cds.serve(config)
    except (_cds.CdsConfigError, TrustConfigError) as exc:
        err.write(f"guideline serve: error: {exc}\n")
        return BAD_INPUT
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guideline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("evaluate", help="evaluate one patient's facts (JSON; - = stdin)")
    p.add_argument("file", nargs="?", help="patient facts (JSON; - = stdin); or use --fhir")
    p.add_argument("--guideline", metavar="DIR", help="guideline folder (default: the bundled neutropenia one)")
    p.add_argument("--format", choices=("json", "text"), default="text")
    p.add_argument("--fhir", metavar="BUNDLE", help="read the facts from a FHIR R4 Bundle / resource(s) (JSON)")
    p.add_argument("--facts", metavar="EXTRA", help="with --fhir: facts FHIR does not carry (JSON object)")
    p.add_argument("--as-of", type=_iso_date, metavar="YYYY-MM-DD",
                   help="with --fhir: date for ages and the latest Observation counted (default: today, UTC)")
    p.add_argument("--include-preliminary", action="store_true",
                   help="with --fhir: also use preliminary Observations")
    p.add_argument("--audit-log", metavar="LOG", help="append this evaluation to a hash-chained audit log")
    p.set_defaults(func=cmd_evaluate, usage=p.format_usage)
    p = sub.add_parser("validate", help="schema and semantic checks of a guideline folder")
    p.add_argument("dir", nargs="?")
    p.add_argument("--release", action="store_true",
                   help="also require: approved, reviewers, effective date, the digest recorded for its version")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("test", help="run the guideline's clinical test cases and report rule coverage")
    p.add_argument("dir", nargs="?")
    p.add_argument("--min-coverage", type=float, metavar="PCT", help="fail below this rule coverage")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("release", help="record the current version's content digest in releases.yaml")
    p.add_argument("dir", nargs="?")
    p.add_argument("--by", metavar="NAME", help="who records the release")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("audit", help="audit log tools")
    audit = p.add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check every line and the hash chain of an audit log")
    p.add_argument("log")
    p.set_defaults(func=cmd_audit_verify)
    p = sub.add_parser("diff", help="what changed between two guideline versions, and is the version bump right")
    p.add_argument("old", nargs="?", metavar="OLD", help="old guideline folder (with --rev: the folder, default bundled)")
    p.add_argument("new", nargs="?", metavar="NEW", help="new guideline folder")
    p.add_argument("--rev", metavar="REV1..REV2", help="compare one folder at two git revisions (REV1.. = with the "
                   "working tree)")
    p.add_argument("--format", choices=tuple(_diffreport.RENDER), default="text")
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("render", help="the guideline as one HTML (or Markdown) document for clinical review")
    p.add_argument("dir", nargs="?", help="guideline folder (default: the bundled neutropenia one)")
    p.add_argument("--format", choices=RENDER_FORMATS, default="html")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("serve", help="run the CDS Hooks 2.0 service (patient-view, order-select, feedback)")
    p.add_argument("--guideline", metavar="DIR", help="guideline folder (default: the bundled neutropenia one)")
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
    p.set_defaults(func=cmd_serve)
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
    except EngineError as exc:  # the one place exceptions become exit codes: each class carries its own
        err.writelines(f"{line}\n" for line in exc.report())
        return exc.exit_code
