"""`guideline cohort INPUT`: read patients as a stream, evaluate them on Dask, write one row per patient.

The driver reads and cuts the input, keeps the rows in input order and checks that no NDJSON id
is given twice; workers parse, evaluate and count. Exit 0 when every patient has its row (invalid
ones included), 2 for an unreadable input or an invalid guideline, 1 when the run itself failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from engine.cohort import bulk, execute, ndjson, report
from engine.cohort.output import Rows, open_rows
from engine.cohort.rows import guideline_key, invalid_row
from engine.cohort.seen import SeenIds
from engine.cohort.summary import Summary, Tally, as_json
from engine.cohort.work import BULK, NDJSON, encode, evaluate_batch
from engine.errors import BadInputError
from engine.guideline import Guideline

SUMMARY_FORMATS = (".json", ".html")


@dataclass(frozen=True)
class Options:
    source: str                      # NDJSON file, `-`, or a Bulk Data export folder
    workers: int | None = None
    scheduler: str | None = None
    as_of: date | None = None
    facts: Path | None = None        # extra facts for a Bulk Data export
    summary: Path | None = None
    batch: int = execute.BATCH
    chunk_lines: int = bulk.CHUNK_LINES
    missing: bool = True             # False (`--no-missing`): rows and summary without the missing facts


def check_options(options: Options) -> str:
    """The input's kind (NDJSON or BULK); BadInputError for a combination that cannot work."""
    if options.summary is not None and options.summary.suffix not in SUMMARY_FORMATS:
        raise BadInputError(f"--summary {options.summary}: the summary is .json or .html")
    if options.workers is not None and options.workers < 1:
        raise BadInputError(f"--workers {options.workers}: at least 1")
    if options.workers is not None and options.scheduler is not None:
        raise BadInputError("--workers is for the embedded cluster; with --scheduler the cluster has its own workers")
    if options.source != "-" and not Path(options.source).exists():
        raise BadInputError(f"{options.source}: no such file or folder")
    kind = BULK if options.source != "-" and Path(options.source).is_dir() else NDJSON
    if kind == NDJSON and (options.facts is not None or options.as_of is not None):
        raise BadInputError("--facts and --as-of go with a FHIR Bulk Data export folder; NDJSON lines carry "
                            "their facts")
    if kind == BULK and not bulk.export_files(Path(options.source)):
        raise BadInputError(f"{options.source}: no *.ndjson files (a FHIR Bulk Data export folder holds "
                            "Patient.ndjson, Observation.ndjson, ...)")
    if options.facts is not None and not options.facts.is_file():
        raise BadInputError(f"--facts {options.facts}: no such file")
    return kind


def _stream(source: str, stdin: TextIO | BinaryIO) -> BinaryIO | TextIO:
    if source == "-":
        return getattr(stdin, "buffer", stdin)
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise BadInputError(f"cannot read {source}: {exc.strerror}") from exc


def items(kind: str, options: Options, stdin: TextIO | BinaryIO, counts: bulk.Counts) -> Iterator[Any]:
    if kind == BULK:
        yield from bulk.groups(Path(options.source), options.facts, options.chunk_lines, counts)
        return
    stream = _stream(options.source, stdin)
    try:
        yield from ndjson.lines(stream)
    except OSError as exc:
        raise BadInputError(f"cannot read {options.source}: {exc.strerror}") from exc
    finally:
        if stream is not getattr(stdin, "buffer", stdin):
            stream.close()


def _progress(err: TextIO) -> Any:
    """A bar on a terminal; nothing at all when stderr is a file or a pipe (a log stays clean)."""
    from tqdm import tqdm

    return tqdm(unit=" patients", unit_scale=True, file=err, disable=not err.isatty(), mininterval=0.5,
                dynamic_ncols=True, leave=False)


@dataclass
class Run:
    summary: Summary
    seconds: float
    workers: int


def run(guideline: Guideline, options: Options, out: Rows, err: TextIO, stdin: TextIO | BinaryIO) -> Run:
    """Evaluate every patient of the input onto `out` (NDJSON or Parquet), one row each, in input order
    (a Bulk Data export: in the order of the patient reference)."""
    kind = check_options(options)
    as_of = options.as_of or datetime.now(UTC).date()  # one date for the whole run, on every worker
    key = guideline_key(guideline)
    tally, summary = Tally(guideline), Summary()
    counts = bulk.Counts()
    with execute.client(options.workers, options.scheduler) as dask_client, _progress(err) as bar, \
            SeenIds() as seen:
        workers = max(execute.worker_count(dask_client), 1)
        start = time.perf_counter()
        shipped = execute.ship(dask_client, guideline)
        calls = ((kind, batch, as_of, options.missing)
                 for batch in execute.batches(items(kind, options, stdin, counts), options.batch))
        for done in execute.ordered_map(dask_client, evaluate_batch, [shipped, guideline.digest], calls,
                                        execute.WINDOW_PER_WORKER * workers):
            summary.merge(done.summary)
            firsts = seen.firsts(done.ids, done.wheres) if kind == NDJSON else [None] * len(done.rows)
            for text, patient_id, where, first in zip(done.rows, done.ids, done.wheres, firsts):
                if first is not None:  # the later line is the invalid one; the first keeps its row
                    tally.add(summary, json.loads(text), -1)
                    again = invalid_row(patient_id, key, [f"{where}: id '{patient_id}' was already given "
                                                          f"at {first}; one line per patient"])
                    tally.add(summary, again)
                    text = encode(again)
                out.write(text)
            bar.update(len(done.rows))
        seconds = time.perf_counter() - start
    if counts.ignored:
        err.write("note: not read (no fact comes from them): "
                  + ", ".join(f"{n:,} {t}" for t, n in sorted(counts.ignored.items())) + "\n")
    return Run(summary, seconds, workers)


def command(guideline: Guideline, options: Options, output: str | None, out: TextIO, err: TextIO,
            stdin: TextIO | BinaryIO, output_format: str | None = None) -> int:
    """The whole command: rows to `output` (default `out`; NDJSON, or Parquet by `output_format` or
    a .parquet name), the summary file, the closing line on stderr."""
    check_options(options)
    rows = open_rows(guideline, output, output_format, out)
    try:
        done = run(guideline, options, rows, err, stdin)
    except BaseException:  # also an interrupt: no half file is left under the output's name
        rows.abort()
        raise
    rows.close()
    s = done.summary
    rate = s.patients / done.seconds if done.seconds > 0 else 0.0
    err.write(f"cohort: {s.patients:,} patients, {s.evaluated:,} evaluated, {s.invalid:,} invalid, in "
              f"{done.seconds:.1f} s ({rate:,.0f} patients/s on {done.workers} worker"
              f"{'s' if done.workers != 1 else ''})\n")
    if options.summary is not None:
        data = as_json(s, Tally(guideline), {**guideline_key(guideline), "title": guideline.content.metadata.title},
                       done.seconds, done.workers, missing=options.missing)
        text = (json.dumps(data, ensure_ascii=False, indent=2) + "\n" if options.summary.suffix == ".json"
                else report.html(data, guideline))
        try:
            options.summary.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot write {options.summary}: {exc.strerror}") from exc
    return 0



