"""Where the rows of `guideline cohort` go: NDJSON (standard output or a file) or a Parquet file.

One small interface for both (`Rows`: write each row's JSON text in order, then `close` on a
completed run or `abort` on a failed one), so the run loop does not know the format. A file is
written under a temporary name beside its target and renamed onto it only when the run
completes (engine/cohort/staged.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TextIO

from engine.cohort.staged import Staged
from engine.errors import BadInputError
from engine.guideline import Guideline

NDJSON, PARQUET = "ndjson", "parquet"
FORMATS = (NDJSON, PARQUET)
PARQUET_SUFFIX = ".parquet"


class Rows(Protocol):
    """The destination of a run's rows, in input order."""

    def write(self, text: str, row: dict[str, Any] | None = None) -> None:
        """One row: its NDJSON text (one line, no newline), and its dict when the caller has it."""

    def close(self) -> None:
        """The run completed: finish the output (a file is renamed into place)."""

    def abort(self) -> None:
        """The run failed: leave no partial output behind."""


class TextRows:
    """NDJSON onto a text stream the caller owns (standard output): flushed, never closed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str, row: dict[str, Any] | None = None) -> None:
        self.stream.write(text + "\n")

    def close(self) -> None:
        self.stream.flush()

    def abort(self) -> None:
        self.stream.flush()  # what was written is out already; the closing error says the run failed


class FileRows:
    """NDJSON into a staged file."""

    def __init__(self, target: Path) -> None:
        self.staged = Staged(target)

    def write(self, text: str, row: dict[str, Any] | None = None) -> None:
        try:
            self.staged.file.write(text.encode("utf-8") + b"\n")
        except OSError as exc:
            raise self.staged.failed(exc) from exc

    def close(self) -> None:
        try:
            self.staged.commit()
        except OSError as exc:
            self.staged.discard()
            raise self.staged.failed(exc) from exc

    def abort(self) -> None:
        self.staged.discard()


def output_format(output: str | None, requested: str | None) -> str:
    """NDJSON or PARQUET: `--format` if given, else by the name of `-o` (`.parquet`); BadInputError
    for Parquet on standard output or a format its file name contradicts."""
    to_stdout = output is None or output == "-"
    named = PARQUET if not to_stdout and Path(str(output)).suffix.lower() == PARQUET_SUFFIX else None
    if requested is not None and requested not in FORMATS:
        raise BadInputError(f"--format {requested}: one of {', '.join(FORMATS)}")
    if requested == NDJSON and named == PARQUET:
        raise BadInputError(f"-o {output} with --format ndjson: a {PARQUET_SUFFIX} file holds Parquet; drop "
                            "--format or name the file otherwise")
    chosen = requested or named or NDJSON
    if chosen == PARQUET and to_stdout:
        raise BadInputError("Parquet is written to a file, not to standard output: give -o FILE.parquet "
                            "(standard output carries NDJSON)")
    return chosen


def open_rows(guideline: Guideline, output: str | None, requested: str | None, out: TextIO) -> Rows:
    """The destination of the rows, opened (its file staged) before the run starts, so a name that
    cannot be written or a missing pyarrow is said before any patient is evaluated."""
    chosen = output_format(output, requested)
    if output is None or output == "-":
        return TextRows(out)
    if chosen == NDJSON:
        return FileRows(Path(output))
    # pyarrow is the optional extra: imported only when Parquet is asked for
    from engine.cohort.parquet import ParquetRows, pyarrow_modules

    modules = pyarrow_modules()  # BadInputError naming the extra, before a file is created
    return ParquetRows(guideline, Staged(Path(output)), modules)
