"""Semantic checks of what the guideline cites and recommends: references, catalogue codes, traceability."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from engine.errors import Problem, did_you_mean
from engine.model.content import Content, Where


def duplicate_reference_ids(content: Content) -> Iterator[Problem]:
    """Check: reference ids in guideline.yaml are unique (each use of a taken id is reported)."""
    where = content.where["guideline"]
    # Content.references is keyed by id, so a duplicate is visible only in the document itself.
    references = where.doc.data["references"]
    counts = Counter(r["id"] for r in references)
    for i, r in enumerate(references):
        if counts[r["id"]] > 1:
            yield where.problem("duplicate-id", f"reference {r['id']} is defined twice", "references", i, "id")


def codes_without_rule(content: Content) -> Iterator[Problem]:
    """Check: every catalogue code is recommended by some rule."""
    recommended = {rule.recommend for rule in content.rules if rule.recommend}
    for code, rec in content.catalogue.items():
        if code not in recommended:
            yield rec.where.problem("code-without-rule", f"catalogue code '{code}' has no rule recommending it",
                                    "$key")


def _statements(content: Content) -> Iterator[tuple[Where, int, dict[str, Any]]]:
    """traceability.yaml's statements with their index (none when the file is absent)."""
    if "traceability" in content.where:
        for i, statement in enumerate(content.traceability):
            yield content.where["traceability"], i, statement


def traced_rules(content: Content) -> Iterator[Problem]:
    """Check: a seed statement is traced only to rules that exist."""
    rule_ids = {rule.id for rule in content.rules}
    for where, i, statement in _statements(content):
        for j, rid in enumerate(statement["rules"]):
            if rid not in rule_ids:
                yield where.problem("unknown-rule", f"no rule '{rid}'{did_you_mean(rid, rule_ids)}",
                                    "statements", i, "rules", j)


def traced_codes(content: Content) -> Iterator[Problem]:
    """Check: a seed statement is traced only to catalogue codes."""
    for where, i, statement in _statements(content):
        for j, code in enumerate(statement["codes"]):
            if code not in content.catalogue:
                yield where.problem("unknown-code", f"unknown recommendation code '{code}'"
                                    f"{did_you_mean(code, content.catalogue)}", "statements", i, "codes", j)


def traced_references(content: Content) -> Iterator[Problem]:
    """Check: a seed statement cites only references guideline.yaml defines."""
    for where, i, statement in _statements(content):
        for j, ref in enumerate(statement["references"]):
            if ref not in content.references:
                yield where.problem("unknown-reference", f"reference {ref} is not defined",
                                    "statements", i, "references", j)


def untraced_codes(content: Content) -> Iterator[Problem]:
    """Check: every catalogue code is traced to a seed statement (when traceability.yaml exists)."""
    if "traceability" not in content.where:
        return
    traced = {code for statement in content.traceability for code in statement["codes"]}
    for code in sorted(set(content.catalogue) - traced):
        yield content.where["traceability"].problem("untraced-code",
                                                    f"catalogue code '{code}' is traced to no seed statement")
