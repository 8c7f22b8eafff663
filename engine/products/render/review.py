"""The review model both formats of `guideline render` show: rules in words, who reads, derives and cites what.

The HTML and Markdown builders both read one `Review`, so they always show the same things.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.model.content import Content, Rule, atoms
from engine.products.render.graph import rule_reads, score_reads
from engine.products.render.texts import then_words
from engine.products.render.thresholds import ThresholdRow, threshold_rows
from engine.products.words import binding, condition_words

SECTIONS = (("metadata", "Guideline"), ("population", "Whom this guideline is for"), ("references", "References"),
            ("rules", "Rules"), ("catalogue", "Recommendation catalogue"),
            ("expected", "Expected guidance and declared conflicts"), ("scores", "Scores"), ("thresholds", "Thresholds"),
            ("facts", "Facts dictionary"), ("traceability", "Traceability"), ("flow", "How facts flow"))


@dataclass(frozen=True)
class RuleView:
    rule: Rule
    file: str          # rules file name, e.g. antibiotics.yaml
    when: str
    then: str          # "neutropenia_grade = severe" / the code



@dataclass(frozen=True)
class Review:
    content: Content
    digest: str
    rules: tuple[RuleView, ...]
    topics: dict[str, str]                  # rules file -> its header comment
    recommended_by: dict[str, list[str]]    # code -> rule ids
    derived_by: dict[str, list[str]]        # derived fact -> rule ids / score ids
    read_by: dict[str, list[str]]           # "input:x" / "derived:x" -> rule ids / score ids
    cited_by: dict[int, list[str]]          # reference -> rule ids / score ids
    thresholds: dict[str, list[ThresholdRow]]
    uncompared: list[str]                   # numeric facts no rule compares


def population_view(content: Content) -> tuple[str, str, str, tuple[int, ...]]:
    """(description, condition in words, rationale, citations) of the population; everyone if none."""
    p = content.population
    if p is None:
        return ("Everyone", "the guideline declares no population: it applies to every patient", "", ())
    return (p.description, condition_words(p.when), p.rationale, p.citations)


def review(content: Content, digest: str) -> Review:
    """The review model of resolved content."""
    views = tuple(RuleView(r, _file_of(r), condition_words(r.when), then_words(r)) for r in content.rules)
    first_rule = {v.file: v.rule for v in reversed(views)}
    topics = {file: _file_topic(_path_of(rule)) for file, rule in first_rule.items()}
    recommended_by: dict[str, list[str]] = {code: [] for code in content.catalogue}
    derived_by: dict[str, list[str]] = {name: [] for name in content.derived}
    cited_by: dict[int, list[str]] = {ref: [] for ref in content.references}
    for rule in content.rules:
        if rule.recommend:
            recommended_by.setdefault(rule.recommend, []).append(rule.id)
        if rule.derive:
            derived_by.setdefault(rule.derive, []).append(rule.id)
        for ref in rule.citations:
            cited_by.setdefault(ref, []).append(rule.id)
    for score in content.scores:
        for fact in (score.fact, score.range_fact):
            if fact:
                derived_by.setdefault(fact, []).append(f"score {score.id}")
        for ref in score.citations:
            cited_by.setdefault(ref, []).append(f"score {score.id}")
    thresholds, uncompared = threshold_rows(content)
    return Review(content, digest, views, topics, recommended_by, derived_by, _read_by(content), cited_by,
                  thresholds, uncompared)


def _file_of(rule: Rule) -> str:
    return Path(rule.where.doc.file).name if rule.where is not None else "rules"


def _path_of(rule: Rule) -> Path | None:
    return Path(rule.where.doc.file) if rule.where is not None else None


def _file_topic(path: Path | None) -> str:
    """The first comment of a rules file after its schema line: the editors' description of it."""
    if path is None:
        return ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("#").strip()
        if text and not text.startswith("yaml-language-server"):
            return text
    return ""


def _read_by(content: Content) -> dict[str, list[str]]:
    """"input:x" / "derived:x" -> the rules and scores that read it (as the diagram draws it)."""
    readers: dict[str, list[str]] = {}
    for rule in content.rules:
        for key in rule_reads(rule):
            readers.setdefault(key, []).append(rule.id)
    for score in content.scores:
        for key in score_reads(score):
            readers.setdefault(key, []).append(f"score {score.id}")
    return readers


def rule_groups(rv: Review, derive: bool) -> list[tuple[str, list[RuleView]]]:
    """The derive (or recommend) rules grouped by rules file, in the editors' order."""
    groups: dict[str, list[RuleView]] = {}
    for view in rv.rules:
        if bool(view.rule.derive) == derive:
            groups.setdefault(view.file, []).append(view)
    return list(groups.items())


def score_readers(rv: Review, fact: str | None) -> list[Rule]:
    """The rules that read a score's result fact."""
    return [r for r in rv.content.rules if fact and any(a.fact == fact and binding(a).derived for a in atoms(r.when))]
