"""The Kleene expansion (engine._conditions) against a direct three-valued evaluator."""

from __future__ import annotations

import itertools
import random

import pytest

from engine.compile.kleene import MAX_BRANCHES, ConditionTooLargeError, branches
from engine.model.content import All, Any_, Atom, Condition, NoneKnown, Not, Where
from engine.model.source import Document

W = Where(Document("t.yaml", None), ())
ATOMS = [Atom(name, "is", True, W) for name in "abcd"]
KNOWN = Atom("a", "known", True, W)


def kleene(cond: Condition, env: dict[str, str]) -> str:
    """Reference: 't', 'f' or 'u' for an assignment of atom states."""
    if isinstance(cond, Atom):
        if cond.op == "known":
            return "f" if env[cond.fact] == "u" else "t"
        return env[cond.fact]
    if isinstance(cond, Not):
        return {"t": "f", "f": "t", "u": "u"}[kleene(cond.item, env)]
    values = [kleene(c, env) for c in cond.items]
    if isinstance(cond, NoneKnown):
        return "f" if "t" in values else "t"
    if isinstance(cond, All):
        return "f" if "f" in values else "u" if "u" in values else "t"
    return "t" if "t" in values else "u" if "u" in values else "f"


def satisfied(branch, env: dict[str, str]) -> bool:
    def state(atom: Atom) -> str:
        if atom.op == "known":
            return "f" if env[atom.fact] == "u" else "t"
        return env[atom.fact]
    return all(state(atom) in states for atom, states in branch)


def random_condition(rng: random.Random, depth: int) -> Condition:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(ATOMS + [KNOWN])
    kind = rng.choice(["all", "any", "not", "none_known"])
    if kind == "not":
        return Not(random_condition(rng, depth - 1))
    items = tuple(random_condition(rng, depth - 1) for _ in range(rng.randint(1, 3)))
    return {"all": All, "any": Any_, "none_known": NoneKnown}[kind](items)


ENVS = [dict(zip("abcd", states)) for states in itertools.product("tfu", repeat=4)]


@pytest.mark.parametrize("seed", range(300))
def test_expansion_agrees_with_kleene_logic(seed: int) -> None:
    cond = random_condition(random.Random(seed), 3)
    expanded = {mode: branches(cond, mode) for mode in ("T", "F", "U")}
    for env in ENVS:
        truth = kleene(cond, env)
        for mode, want in (("T", "t"), ("F", "f"), ("U", "u")):
            got = any(satisfied(b, env) for b in expanded[mode])
            assert got == (truth == want), (cond, env, mode)


def test_none_known_is_never_undetermined() -> None:
    cond = NoneKnown((ATOMS[0], ATOMS[1]))
    assert branches(cond, "U") == []
    assert [dict(b) for b in branches(cond, "T")] == [{ATOMS[0]: frozenset("fu"), ATOMS[1]: frozenset("fu")}]


def test_contradictory_branches_are_dropped() -> None:
    assert branches(All((ATOMS[0], Not(ATOMS[0]))), "T") == []


def test_a_condition_too_large_for_durable_rules_is_refused() -> None:
    many = tuple(Any_((Atom(f"x{i}", "is", True, W), Atom(f"y{i}", "is", True, W))) for i in range(9))
    assert 2 ** 9 > MAX_BRANCHES
    with pytest.raises(ConditionTooLargeError):
        branches(All(many), "T")
