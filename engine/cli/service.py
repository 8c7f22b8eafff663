"""The operators' commands: verify an audit log, serve CDS Hooks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from engine.errors import FAILED, OK
from engine.products import audit as _audit


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
