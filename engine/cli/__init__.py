"""The `guideline` command: one function per subcommand returns its exit code; main() maps errors once.

Laid out by job: common.py (what every command shares), evaluate.py, content.py (the editors'
commands), service.py (audit log, CDS Hooks), parser.py (arguments and help).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from engine.cli.parser import build as _parser
from engine.errors import EngineError

__all__ = ["BROKEN_PIPE", "main"]


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
