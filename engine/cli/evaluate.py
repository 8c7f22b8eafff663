"""`guideline evaluate`: one patient's facts (JSON or FHIR) against a guideline, as JSON or text."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from engine.cli.common import UsageError, read_json
from engine.errors import OK
from engine.fhir.reader import read_fhir
from engine.guideline import Guideline, load
from engine.products import audit as _audit
from engine.products import text as _text


def _fhir_facts(args: argparse.Namespace, guideline: Guideline, err: TextIO, stdin: TextIO) -> dict[str, Any]:
    """Facts from --fhir BUNDLE (+ --facts EXTRA); what was read and skipped goes to stderr."""
    bundle = read_json(args.fhir, stdin, facts=False)
    extra = read_json(args.facts, stdin) if args.facts else None
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
    facts = read_json(args.file, stdin) if args.fhir is None else _fhir_facts(args, guideline, err, stdin)
    log = _audit.AuditLog(args.audit_log) if args.audit_log else None  # no result unless its line is written
    # Only the options given, so an evaluation without them is the same call as before.
    given = (("audit_log", log), ("what_if", args.what_if), ("why_not", args.why_not))
    options: dict[str, Any] = {name: value for name, value in given if value}
    result = guideline.evaluate(facts, **options)
    err.writelines(f"note: {note}\n" for note in result.notes)
    if args.format == "json":
        json.dump(result.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write(_text.evaluation(guideline, result, everything=args.all))
    return OK
