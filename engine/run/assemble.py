"""The result of one evaluation, assembled from what its firings recorded: derived facts,
recommendations with their `because` chains, and the missing facts that would decide more."""

from __future__ import annotations

from typing import Any

from engine.compile import encoding as enc
from engine.errors import RuleEngineError
from engine.model.vocabulary import urgency_rank
from engine.run.actions import Evaluation
from engine.run.applicability import applied
from engine.run.explain import reason, show
from engine.run.ranking import meanings, rank
from engine.run.result import MissingFact, RecommendationResult, Result


def _inputs_behind(inputs: dict[str, set[str]], via: dict[str, set[str]], target: str,
                   cache: dict[str, set[str]], seen: frozenset[str] = frozenset()) -> set[str]:
    """The input facts whose absence left `target` undetermined, through undetermined derived facts
    (`inputs`, `via`: the evaluation's missing_inputs and missing_via)."""
    if target in cache:
        return cache[target]
    found = set(inputs.get(target, ()))
    for dep in via.get(target, ()):
        if dep not in seen:
            found |= _inputs_behind(inputs, via, dep, cache, seen | {target})
    cache[target] = found
    return found


def _chain(ev: Evaluation, deps: tuple[str, ...], lines: list[str], seen: set[str]) -> None:
    for name in deps:
        if name in seen or name not in ev.resolved:
            continue
        seen.add(name)
        res = ev.resolved[name]
        for rule, text, sub in res.reasons:
            value = show(res.value, ev.unit(name)) if res.state == "value" else \
                f"between {show(res.lo)} and {show(res.hi)}"
            label = enc.item_label(name)
            lines.append(f"{label} = {value} {reason(rule, text)}")
            _chain(ev, sub, lines, seen)


def derived_facts(ev: Evaluation, converted: dict[str, float]) -> dict[str, Any]:
    """The result's `derived`: converted inputs, then each derived fact's value or undetermined label."""
    content = ev.content
    for name in content.derived:  # score items are internal and checked by their score
        if name not in ev.resolved and not _is_range(ev, name):
            raise RuleEngineError(f"derived fact '{name}' was not resolved for this patient: its rules "
                                  "do not cover every case")
    derived: dict[str, Any] = dict(converted)
    for name, spec in content.derived.items():
        if _is_range(ev, name):
            continue
        res = ev.resolved[name]
        if res.state == "value":
            derived[name] = res.value
        elif res.state == "unknown":
            derived[name] = spec.undetermined_label
    for score in content.scores:
        res = ev.resolved[score.fact]
        if score.range_fact and res.lo is not None:
            derived[score.range_fact] = [res.lo, res.hi]
        elif score.range_fact and res.state == "unknown":
            derived[score.range_fact] = None
    return derived


def missing_facts(ev: Evaluation) -> tuple[MissingFact, ...]:
    """The input facts that would decide more, ranked (before applicability is applied)."""
    fired = set(ev.recs)
    needed: dict[str, set[str]] = {}
    cache: dict[str, set[str]] = {}
    inputs, via = ev.missing_inputs, ev.missing_via
    targets = [t for t in inputs.keys() | via.keys() if t not in ev.program.item_facts and t not in fired]
    for target in targets:
        outcome = ev.resolved.get(target)
        if outcome is not None and outcome.state == "value":
            continue  # decided after all (e.g. by another branch)
        for fact in _inputs_behind(inputs, via, target, cache):
            needed.setdefault(fact, set()).add(target)
    return rank(needed, ev.content, ev.program.cache.setdefault("decides", {}))


def result(ev: Evaluation, guideline: dict[str, str], converted: dict[str, float]) -> Result:
    content = ev.content
    derived = derived_facts(ev, converted)
    recs = []
    by_id = ev.program.rules
    for code, firings in ev.recs.items():
        entry = content.catalogue[code]
        firings = sorted(firings, key=lambda f: (f.rule, f.text))
        rules = tuple(dict.fromkeys(f.rule for f in firings))
        refs = sorted({ref for rid in rules for ref in by_id[rid].citations})
        because: list[str] = []
        seen: set[str] = set()
        for f in firings:
            because.append(f"rule {f.rule} ({by_id[f.rule].title}): {f.text}")
            _chain(ev, f.deps, because, seen)
        recs.append(RecommendationResult(
            code, entry.kind, entry.urgency, entry.title, entry.text, rules[0], rules,
            tuple(f"[{ref}] {content.references[ref].citation}" for ref in refs), tuple(because),
            tuple(refs)))
    recs.sort(key=lambda r: (urgency_rank(r.urgency), r.code))

    missing = missing_facts(ev)
    explanations = {}
    for name in content.derived:
        resolution = ev.resolved.get(name)
        if resolution is not None and resolution.reasons:
            explanations[name] = tuple(reason(rule, text) for rule, text, _ in resolution.reasons)
    return applied(ev, Result(guideline, derived, tuple(recs), missing, frozenset(ev.rules_fired), explanations,
                              meanings=meanings(content, derived)))


def _is_range(ev: Evaluation, name: str) -> bool:
    return ev.content.derived[name].type == "range"
