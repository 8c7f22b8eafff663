"""A cohort row: one patient's codes, derived facts, applicability and missing facts, and nothing else.

The same evaluation on the same engine as a full result, minus what a row of a population audit
does not carry: no explanation texts or `because` chains, no citations, what-if or why-not; and,
when the missing facts are not wanted, none of the rules that only record them (the ruleset
compiled by engine/compile/program.py `compile_without_missing`, built on first use). Its codes,
derived facts, applicability status and missing fact names equal the full result's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.compile.encoding import INPUT, TYPE, Program
from engine.compile.program import compile_without_missing
from engine.model.content import Content
from engine.model.vocabulary import urgency_rank
from engine.run.actions import Evaluation
from engine.run.applicability import applicability, missing_outside_population
from engine.run.assemble import derived_facts, missing_facts
from engine.run.durable import Ruleset
from engine.run.lazy import LazyRuleset
from engine.run.result import Applicability


@dataclass(frozen=True)
class Row:
    """What a population audit keeps of one evaluation (contract section 10's row fields)."""

    codes: tuple[str, ...]          # as `Result.codes`: most urgent first, then by code
    derived: dict[str, Any]         # as `Result.derived`
    applicability: Applicability    # as `Result.applicability` (status, population, because)
    missing: tuple[str, ...] | None  # the names of `Result.missing`, in its order; None: not asked
    notes: tuple[str, ...] = ()     # as `Result.notes` (e.g. that no fact was given)

    def to_dict(self) -> dict[str, Any]:
        return {"applicability": self.applicability.to_dict(), "codes": list(self.codes),
                "derived": dict(self.derived),
                **({"missing": list(self.missing)} if self.missing is not None else {}),
                **({"notes": list(self.notes)} if self.notes else {})}


def without_missing(program: Program) -> LazyRuleset:
    """`program` without RECOMMEND_UNDETERMINED rules and its ruleset, built on first use."""
    return LazyRuleset(lambda: compile_without_missing(program))


def run_row(content: Content, program: Program, ruleset: Ruleset, facts: dict[str, Any],
            converted: dict[str, float], missing: bool) -> Row:
    """Evaluate validated, canonical `facts` into a Row (`missing`: also the missing fact names)."""
    ev = Evaluation(content, program, facts, ruleset.constants, explain=False, missing=missing)
    ruleset.run({TYPE: INPUT, **facts}, ev.handle)
    derived = derived_facts(ev, converted)
    status = applicability(ev)  # RuleEngineError when no population outcome fired
    names: tuple[str, ...] | None = None
    if missing:
        ranked = missing_facts(ev)
        if status.status == "does-not-apply":
            ranked = missing_outside_population(ev, ranked)
        names = tuple(m.fact for m in ranked)
    if status.status == "does-not-apply":
        return Row((), derived, status, names)
    catalogue = content.catalogue
    codes = tuple(sorted(ev.recs, key=lambda code: (urgency_rank(catalogue[code].urgency), code)))
    return Row(codes, derived, status, names)
