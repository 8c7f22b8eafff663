"""Stage 2: the semantic checks across files, as a table of named checks run in a fixed order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from engine.check import (
    catalogue,
    conditions,
    conflicts,
    derivations,
    facts,
    rules,
    scores,
)
from engine.errors import Problem
from engine.model.content import Content


class Check(NamedTuple):
    """One semantic check: its name, the function, and the problem codes it may report."""

    name: str
    run: Callable[[Content], Iterable[Problem]]
    codes: tuple[str, ...]


# The checks as data (as jsonschema has one function per keyword, OPA one per stage). Each reads
# the schema-valid content only, never another check's findings, so the order only fixes the
# order of the list; validate() sorts it by location anyway.
CHECKS: tuple[Check, ...] = (
    Check("duplicate-reference-ids", catalogue.duplicate_reference_ids, ("duplicate-id",)),
    Check("duplicate-rule-ids", rules.duplicate_rule_ids, ("duplicate-id",)),
    Check("condition-atoms", conditions.condition_atoms, ("unknown-fact", "type-mismatch", "unit-mismatch")),
    Check("rule-citations", rules.rule_citations, ("unknown-reference",)),
    Check("population-citations", rules.population_citations, ("unknown-reference",)),
    Check("rule-codes", rules.rule_codes, ("unknown-code",)),
    Check("derive-targets", rules.derive_targets, ("unknown-fact", "type-mismatch")),
    Check("derived-values", rules.derived_values, ("type-mismatch",)),
    Check("formula-operands", rules.formula_operands, ("unknown-fact", "type-mismatch")),
    Check("input-ranges", facts.input_ranges, ("bad-range",)),
    Check("unit-conversions", facts.unit_conversions, ("unit-mismatch",)),
    Check("duplicate-loinc", facts.duplicate_loinc, ("duplicate-loinc",)),
    Check("input-and-derived-types", facts.input_and_derived_types, ("type-mismatch",)),
    Check("value-meanings", facts.value_meanings, ("unknown-value", "unknown-reference")),
    Check("duplicate-score-ids", scores.duplicate_score_ids, ("duplicate-id",)),
    Check("duplicate-item-ids", scores.duplicate_item_ids, ("duplicate-id",)),
    Check("score-citations", scores.score_citations, ("unknown-reference",)),
    Check("score-targets", scores.score_targets, ("unknown-fact", "type-mismatch")),
    Check("underived-facts", derivations.underived_facts, ("underived-fact",)),
    Check("conflicting-derivations", derivations.conflicting_derivations, ("conflicting-derivation",)),
    Check("derivation-cycles", derivations.derivation_cycles, ("cycle",)),
    Check("codes-without-rule", catalogue.codes_without_rule, ("code-without-rule",)),
    Check("traced-rules", catalogue.traced_rules, ("unknown-rule",)),
    Check("traced-codes", catalogue.traced_codes, ("unknown-code",)),
    Check("traced-references", catalogue.traced_references, ("unknown-reference",)),
    Check("untraced-codes", catalogue.untraced_codes, ("untraced-code",)),
    Check("conflict-codes", conflicts.conflict_codes, ("bad-conflict", "unknown-code")),
)


def check(content: Content) -> list[Problem]:
    """All semantic problems of a schema-valid guideline: every check runs, none stops the others."""
    return [problem for entry in CHECKS for problem in entry.run(content)]
