"""Semantic checks of the editors' declarations for `guideline check`: conflicting codes."""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Problem, did_you_mean
from engine.model.content import Content


def conflict_codes(content: Content) -> Iterator[Problem]:
    """Check: `conflicts_with` names catalogue codes other than the entry's own."""
    for code, rec in content.catalogue.items():
        for j, other in enumerate(rec.conflicts_with):
            if other == code:
                yield rec.where.problem("bad-conflict", f"'{code}' cannot conflict with itself",
                                        "conflicts_with", j)
            elif other not in content.catalogue:
                yield rec.where.problem("unknown-code", f"unknown recommendation code '{other}'"
                                        f"{did_you_mean(other, content.catalogue)}", "conflicts_with", j)


def conflict_pairs(content: Content) -> list[tuple[str, str]]:
    """Declared conflicts as sorted pairs: a pair declared on either side, or on both, is one."""
    pairs = {(min(code, other), max(code, other)) for code, rec in content.catalogue.items()
             for other in rec.conflicts_with if other in content.catalogue and other != code}
    return sorted(pairs)
