"""Running mutants on the real engine: each compiled to its own durable_rules ruleset and run
against the guideline's cases, in parallel worker processes.

What does not change between mutants is built once per process (`Bench`): the resolved content,
the cases with their facts already checked and converted, the mutant list, and which facts and
rules each case touches on the unmutated guideline. A mutant stops at its first failing case, and
the cases that read the mutated facts (or fired the mutated rule) are tried first. Workers are
started with "spawn": a forked child would inherit the parent's durable_rules handles.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.check import semantic
from engine.compile import limits
from engine.compile.kleene import ConditionTooLargeError
from engine.compile.program import compile_content
from engine.errors import EngineError, GuidelineInvalidError, Problem, RuleEngineError
from engine.guideline import Guideline
from engine.pipeline import analyse
from engine.products.cases import Case, expectation_failures, load_cases
from engine.products.mutate.mutants import Mutant, apply, generate
from engine.run.durable import Ruleset
from engine.run.evaluate import run
from engine.run.input import check_facts


@dataclass(frozen=True)
class Trial:
    """What one mutant did: killed (by `case`, with the first unmet expectation), survived, or
    stillborn (the mutated content does not validate or compile; `detail` says why)."""

    index: int
    status: str
    case: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Baseline:
    """A case as it ran on the unmutated guideline."""

    case: Case
    facts: dict[str, Any]
    converted: dict[str, float]
    reads: frozenset[str]         # input facts given and derived facts determined
    fired: frozenset[str]         # rules (and scores) that fired
    failures: tuple[str, ...]     # unmet expectations on the unmutated guideline


class Bench:
    """One process's guideline, cases and mutants, built once and reused for every mutant."""

    def __init__(self, folder: Path):
        analysis = analyse(folder)
        if analysis.problems:
            raise GuidelineInvalidError(analysis.problems)
        assert analysis.content is not None and analysis.program is not None
        self.folder = folder
        self.digest = analysis.digest
        self.content = analysis.content
        self.guideline = Guideline(analysis.content, analysis.program, analysis.digest, folder)
        self.cases, self.problems = load_cases(folder, self.guideline)
        self.mutants: list[Mutant] = generate(self.content) if not self.problems else []
        self.baseline: list[Baseline] = [] if self.problems else [self._baseline(c) for c in self.cases]
        self._kills = [0] * len(self.baseline)
        self._killers: dict[str, list[int]] = {}
        self.evaluations = 0  # cases run on mutants, to measure the ordering

    def _baseline(self, case: Case) -> Baseline:
        facts, converted = check_facts(self.content, case.facts)  # checked once, not once per mutant
        result = self.guideline.evaluate(case.facts)
        reads = frozenset(facts) | frozenset(k for k, v in result.derived.items() if v is not None)
        return Baseline(case, facts, converted, reads, result.rules_fired,
                        tuple(expectation_failures(case, result)))

    def _order(self, mutant: Mutant) -> list[int]:
        """Cases most likely to kill `mutant` first: those that fired its rule and read its facts,
        then those that killed the most mutants so far in this process."""
        killers = self._killers.get(mutant.rule, [])

        def key(i: int) -> tuple[int, int, int, int]:
            b = self.baseline[i]
            return (-(i in killers), -(2 * (mutant.rule in b.fired) + bool(mutant.facts & b.reads)),
                    -self._kills[i], i)
        return sorted(range(len(self.baseline)), key=key)

    def _killed(self, mutant: Mutant, i: int) -> None:
        """Remember case `i` killed a mutant of this rule: a sibling mutant likely dies on it too."""
        self._kills[i] += 1
        killers = self._killers.setdefault(mutant.rule, [])
        if i not in killers:
            killers.append(i)

    def trial(self, index: int) -> Trial:
        mutant = self.mutants[index]
        content = apply(self.content, mutant)
        problems: list[Problem] = [*mutant.problems, *semantic.check(content)]
        if problems:
            return Trial(index, "stillborn", detail=f"{problems[0].code}: {problems[0].message}")
        try:
            program = compile_content(content)
        except ConditionTooLargeError as exc:
            return Trial(index, "stillborn", detail=str(exc))
        found = limits.static_problem(content, program)  # beyond these, durable_rules hangs
        if found:
            return Trial(index, "stillborn", detail=found[1])
        try:
            ruleset = Ruleset(program.definition)
        except Exception as exc:  # the C core refuses the ruleset with a bare Exception
            return Trial(index, "stillborn", detail=f"durable_rules cannot build it: {exc}")
        info = self.guideline.info
        try:
            for i in self._order(mutant):
                b = self.baseline[i]
                self.evaluations += 1
                try:
                    result = run(content, program, ruleset, b.facts, info, b.converted)
                except RuleEngineError as exc:  # the case cannot even be evaluated: it fails
                    self._killed(mutant, i)
                    return Trial(index, "killed", b.case.id, str(exc))
                failures = expectation_failures(b.case, result)
                if failures:
                    self._killed(mutant, i)
                    return Trial(index, "killed", b.case.id, failures[0])
            return Trial(index, "survived")
        finally:
            ruleset.close()


# --- parallel execution ------------------------------------------------------------------------

_bench: Bench | None = None


def _start(folder: str, digest: str) -> None:
    global _bench
    _bench = Bench(Path(folder))
    if _bench.digest != digest:  # mutants are named by index: every process must see the same content
        raise RuleEngineError(f"{folder} changed while its mutants were being run; run again")


def _trial(index: int) -> Trial:
    assert _bench is not None, "worker not initialised"
    return _bench.trial(index)


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


Progress = Callable[[int, int], None]


def run_mutants(bench: Bench, workers: int, progress: Progress | None = None) -> list[Trial]:
    """Every mutant of `bench` tried against its cases, in `workers` processes (1: in this one)."""
    total = len(bench.mutants)
    trials: list[Trial] = []
    if workers <= 1 or total <= 1:
        for i in range(total):
            trials.append(bench.trial(i))
            if progress:
                progress(len(trials), total)
        return trials
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, total), mp_context=context, initializer=_start,
                             initargs=(str(bench.folder), bench.digest)) as pool:
        futures = [pool.submit(_trial, i) for i in range(total)]
        for future in as_completed(futures):
            try:
                trials.append(future.result())
            except EngineError:
                raise
            except Exception as exc:  # a worker died: the run is void, never a partial score
                raise RuleEngineError(f"a mutation worker failed: {type(exc).__name__}: {exc}") from exc
            if progress:
                progress(len(trials), total)
    return sorted(trials, key=lambda t: t.index)
