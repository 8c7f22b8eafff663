"""The `guideline` argument parser: every subcommand, its options and its help."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.cohort import cmd_cohort
from engine.cli.common import iso_date
from engine.cli.content import (
    cmd_check,
    cmd_diff,
    cmd_release,
    cmd_render,
    cmd_test,
    cmd_validate,
)
from engine.cli.evaluate import cmd_evaluate
from engine.cli.service import cmd_audit_verify, cmd_serve
from engine.cohort.flags import add_cohort_flags
from engine.products.diff import report as _diffreport
from engine.products.render.document import FORMATS as RENDER_FORMATS

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


def build() -> argparse.ArgumentParser:
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
    p.add_argument("--all", action="store_true", help="text: list every missing fact, not only the first few")
    p.add_argument("--fhir", metavar="BUNDLE", help="read the facts from a FHIR R4 Bundle / resource(s) (JSON)")
    p.add_argument("--facts", metavar="EXTRA", help="with --fhir: facts FHIR does not carry (JSON object)")
    p.add_argument("--as-of", type=iso_date, metavar="YYYY-MM-DD",
                   help="with --fhir: date for ages and the latest Observation counted (default: today, UTC)")
    p.add_argument("--include-preliminary", action="store_true",
                   help="with --fhir: also use preliminary Observations")
    p.add_argument("--audit-log", metavar="LOG", help="append this evaluation to a hash-chained audit log")
    p.add_argument("--what-if", action="store_true", help="also what each missing fact's decision-relevant "
                   "values would add to or remove from the advice (evaluated on the engine)")
    p.add_argument("--why-not", action="append", metavar="CODE", help="also why this catalogue code fired, did "
                   "not fire or is undetermined (repeatable)")
    p = _command(sub, "validate", cmd_validate, "schema and semantic checks of a guideline folder", folder="dir")
    p.add_argument("--release", action="store_true",
                   help="also require: approved, reviewers, effective date, the digest recorded for its version")
    p = _command(sub, "test", cmd_test, "run the guideline's clinical test cases and report rule coverage",
                 folder="dir")
    p.add_argument("--min-coverage", type=float, metavar="PCT", help="fail below this rule coverage")
    p.add_argument("--mutate", action="store_true", help="mutation testing: run the cases against mutants of "
                   "the content and report the ones no case kills")
    p.add_argument("--min-score", type=float, metavar="PCT", help="with --mutate: fail below this mutation score")
    p.add_argument("--workers", type=int, metavar="N", help="with --mutate: worker processes (default: "
                   "all cores)")
    p.add_argument("--format", choices=("json", "text"), default="text", help="with --mutate: output format "
                   "(default text)")
    p = _command(sub, "check", cmd_check, "prove over every patient: declared conflicts, expected guidance, "
                 "dead or shadowed rules, unread facts", folder="dir")
    p.add_argument("--format", choices=("json", "text"), default="text", help="output format (default text)")
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
    add_cohort_flags(p, iso_date, diff=True)
    p = _command(sub, "cohort", cmd_cohort, "evaluate many patients (NDJSON or a FHIR Bulk Data export) in "
                 "parallel on Dask", folder="flag")
    p.add_argument("input", metavar="INPUT", help="NDJSON, one {\"id\", \"facts\"} per line (- = stdin), or a "
                   "FHIR Bulk Data export folder (Patient.ndjson, Observation.ndjson, ...)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the rows to OUT instead of standard output "
                   "(NDJSON; Parquet for OUT.parquet)")
    p.add_argument("--format", choices=("ndjson", "parquet"), help="the rows' format (default: parquet for "
                   "-o OUT.parquet, else ndjson; parquet needs -o and pyarrow)")
    p.add_argument("--summary", metavar="FILE", help="also write counts and charts to FILE.html or FILE.json")
    p.add_argument("--no-missing", action="store_true", help="rows without the missing facts (\"missing\": null, "
                   "not computed): about twice as fast, for audits of codes and derived facts only")
    add_cohort_flags(p, iso_date)
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
