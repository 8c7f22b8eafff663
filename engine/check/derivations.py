"""Semantic checks of how derived facts are produced: by something, by one score alone, without cycles."""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Problem
from engine.model.content import Content, atoms, operands


def producers(content: Content) -> dict[str, list[str]]:
    """fact -> what writes it (`rule 'x'`, `score 'y'`), in file order."""
    produced_by: dict[str, list[str]] = {}
    for rule in content.rules:
        if rule.derive:
            produced_by.setdefault(rule.derive, []).append(f"rule '{rule.id}'")
    for score in content.scores:
        for target in (score.fact, score.range_fact):
            if target is not None:
                produced_by.setdefault(target, []).append(f"score '{score.id}'")
    return produced_by


def underived_facts(content: Content) -> Iterator[Problem]:
    """Check: every declared derived fact is written by some rule or score."""
    produced_by = producers(content)
    for name, spec in content.derived.items():
        assert spec.where is not None
        if not produced_by.get(name):
            yield spec.where.problem("underived-fact", f"no rule or score derives '{name}'", "$key")


def conflicting_derivations(content: Content) -> Iterator[Problem]:
    """Check: a fact a score writes has no other writer (rules may share a fact; a score's total may not)."""
    produced_by = producers(content)
    for name, spec in content.derived.items():
        assert spec.where is not None
        sources = produced_by.get(name, [])
        if any(s.startswith("score") for s in sources) and len(sources) > 1:
            yield spec.where.problem("conflicting-derivation", f"'{name}' is produced by "
                                     f"{' and '.join(sources)}; a score's fact has one source", "$key")


def dependencies(content: Content) -> dict[str, set[str]]:
    """derived fact -> the derived facts its definition reads (for cycle detection)."""
    deps: dict[str, set[str]] = {name: set() for name in content.derived}
    for rule in content.rules:
        if rule.derive in deps:
            names = [a.fact for a in atoms(rule.when)] + [o.fact for o in operands(rule.value)]
            # A rule deriving `anc` that reads `anc` reads the input of that name (Content.fact_read).
            deps[rule.derive] |= {n for n in names if n in content.derived and n != rule.derive}
    for score in content.scores:
        names = [a.fact for a in atoms(score.applies_when)]
        names += [a.fact for item in score.items for opt in item.options for a in atoms(opt.when)]
        for target in (score.fact, score.range_fact):
            if target in deps:
                deps[target] |= {n for n in names if n in content.derived}
    return deps


def cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of the dependency graph once, as a path back to its first node (names sorted, so stable)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(deps):
        if node not in state:
            visit(node, [node])
    return found


def derivation_cycles(content: Content) -> Iterator[Problem]:
    """Check: no derived fact depends, through other derived facts, on itself."""
    for cycle in cycles(dependencies(content)):
        spec = content.derived[cycle[0]]
        assert spec.where is not None
        yield spec.where.problem("cycle", "derived facts depend on each other in a cycle: " + " -> ".join(cycle),
                                 "$key")
