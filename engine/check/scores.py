"""Semantic checks of scores: ids, item ids, citations and the facts a score produces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from engine.errors import Problem, did_you_mean
from engine.model.content import Content


def duplicate_score_ids(content: Content) -> Iterator[Problem]:
    """Check: score ids are unique."""
    counts = Counter(score.id for score in content.scores)
    for score in content.scores:
        if counts[score.id] > 1:
            yield score.where.problem("duplicate-id", f"score id '{score.id}' is used twice", "id")


def duplicate_item_ids(content: Content) -> Iterator[Problem]:
    """Check: item ids are unique within their score."""
    for score in content.scores:
        counts = Counter(item.id for item in score.items)
        for j, item in enumerate(score.items):
            if counts[item.id] > 1:
                yield score.where.problem("duplicate-id", f"item id '{item.id}' is used twice in score "
                                          f"'{score.id}'", "items", j, "id")


def score_citations(content: Content) -> Iterator[Problem]:
    """Check: a score cites only references guideline.yaml defines."""
    for score in content.scores:
        for i, ref in enumerate(score.citations):
            if ref not in content.references:
                yield score.where.problem("unknown-reference", f"score '{score.id}' cites reference {ref},"
                                          " which guideline.yaml does not define", "citations", i)


def score_targets(content: Content) -> Iterator[Problem]:
    """Check: a score's fact and range_fact are derived facts of the type it writes."""
    for score in content.scores:
        # What a score writes: its total (a number) and, optionally, the band it falls in (a range).
        for key, target, want in (("fact", score.fact, "number"), ("range_fact", score.range_fact, "range")):
            if target is None:
                continue
            spec = content.derived.get(target)
            if spec is None:
                yield score.where.problem("unknown-fact", f"'{target}' is not a derived fact of facts.yaml"
                                          f"{did_you_mean(target, content.derived)}", key)
            elif spec.type != want:
                yield score.where.problem("type-mismatch", f"'{target}' must be declared type {want}", key)
