"""`guideline test --mutate` from folder to exit code: load, check, run, report, gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from engine.errors import BAD_INPUT, FAILED, OK, BadInputError, Problem
from engine.products.mutate.equivalents import match, read_equivalents
from engine.products.mutate.report import Report, to_json, to_text
from engine.products.mutate.runner import Bench, Progress, default_workers, run_mutants


def mutate(folder: Path, workers: int | None = None, progress: Progress | None = None) -> tuple[Report | None, list[Problem], list[str]]:
    """(the report, located problems of the case files, cases failing on the unmutated guideline).

    Raises GuidelineInvalidError for an invalid guideline. No report when there are problems or
    failing cases: mutants can only be judged against cases that pass on the real content.
    """
    started = time.monotonic()
    bench = Bench(folder)
    if bench.problems:
        return None, sorted(bench.problems), []
    failing = [f"{b.case.file}:{b.case.line}: {b.case.id}: {f}" for b in bench.baseline for f in b.failures]
    if failing:
        return None, [], failing
    equivalent, problems = match(read_equivalents(folder), bench.mutants)
    if problems:
        return None, sorted(problems), []
    workers = workers or default_workers()
    trials = run_mutants(bench, workers, progress)
    report = Report(bench.mutants, trials, equivalent, time.monotonic() - started, workers)
    # An explanation contradicted by a case that tells the mutant apart is wrong, not a note.
    killed = {t.index: t for t in trials if t.status != "survived"}
    problems = [e.problem("mutation", "not-equivalent", f"case '{killed[i].case}' kills this mutant, so it is not "
                          "equivalent; remove the entry") if killed[i].status == "killed" else
                e.problem("mutation", "not-equivalent", "this mutant is stillborn (not counted); remove the entry")
                for i, e in equivalent.items() if i in killed]
    return report, sorted(problems), []


def _progress(stream: TextIO) -> Progress | None:
    """A progress line on `stream`, only when a person is watching it (a terminal)."""
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\rmutants: {done}/{total}" + ("\n" if done == total else ""))
        stream.flush()
    return show


def command(folder: Path, *, fmt: str, min_score: float | None, workers: int | None,
            out: TextIO, err: TextIO) -> int:
    """The exit code of `guideline test DIR --mutate`: 0; 1 below --min-score (or a case fails on
    the unmutated guideline); 2 invalid guideline or case file."""
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers needs at least 1 worker process, not {workers}")
    report, problems, failing = mutate(folder, workers, _progress(err))
    if failing:
        err.write("cases fail on the unmutated guideline; fix them before mutation testing:\n")
        err.writelines(f"  {line}\n" for line in failing)
        return FAILED
    if report is None or problems:
        out.writelines(f"{problem}\n" for problem in problems)
        return BAD_INPUT
    out.write(to_json(report) if fmt == "json" else to_text(report))
    if min_score is not None and report.score < min_score:
        err.write(f"mutation score {report.score:.1f}% is below --min-score {min_score:g}%\n")
        return FAILED
    return OK
