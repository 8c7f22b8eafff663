"""Equivalent mutants the editors explained in the case files (`equivalent_mutants:`), checked
against the mutants actually generated, so a typo or an outdated entry cannot hide a survivor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import Problem, did_you_mean
from engine.loader.folder import display_name
from engine.loader.yamlio import read_yaml
from engine.model.source import Document
from engine.products.mutate.mutants import Mutant


@dataclass(frozen=True)
class Equivalent:
    rule: str
    mutation: str
    reason: str
    doc: Document
    index: int

    def problem(self, key: str, code: str, message: str) -> Problem:
        return self.doc.problem(("equivalent_mutants", self.index, key), code, message)


def read_equivalents(folder: Path) -> list[Equivalent]:
    """Every `equivalent_mutants` entry of cases/*.yaml (the files are schema-checked by load_cases)."""
    found = []
    for path in sorted((folder / "cases").glob("*.yaml")):
        doc, problems = read_yaml(path, display_name(folder, path))
        if problems or not isinstance(doc.data, dict):
            continue
        for i, entry in enumerate(doc.data.get("equivalent_mutants") or []):
            found.append(Equivalent(entry["rule"], entry["mutation"], entry["reason"], doc, i))
    return found


def match(equivalents: list[Equivalent], mutants: list[Mutant]) -> tuple[dict[int, Equivalent], list[Problem]]:
    """{mutant index: its explanation}, and a located problem for each entry naming no mutant."""
    by_rule: dict[str, dict[str, int]] = {}
    for i, m in enumerate(mutants):
        by_rule.setdefault(m.rule, {})[m.mutation] = i
    matched: dict[int, Equivalent] = {}
    problems = []
    for e in equivalents:
        if e.rule not in by_rule:
            problems.append(e.problem("rule", "unknown-rule", f"no rule or score '{e.rule}' has mutants"
                                      f"{did_you_mean(e.rule, by_rule)}"))
        elif e.mutation not in by_rule[e.rule]:
            problems.append(e.problem("mutation", "unknown-mutant", f"rule '{e.rule}' has no mutant "
                                      f"'{e.mutation}'{did_you_mean(e.mutation, by_rule[e.rule])}"))
        elif by_rule[e.rule][e.mutation] in matched:
            problems.append(e.problem("mutation", "duplicate-id", f"mutant '{e.mutation}' of '{e.rule}' is "
                                      "explained twice"))
        else:
            matched[by_rule[e.rule][e.mutation]] = e
    return matched, problems
