"""Three-valued (Kleene) conditions as positive disjunctive normal forms.

durable_rules withdraws nothing once matched and mishandles absence (`$not`) when facts arrive
in the same batch, so no rule here relies on negation-as-failure. Instead every condition is
expanded into branches of *literals*, each a positive test on one fact that durable_rules can
match directly: "anc < 0.5 is true", "... is false", "... is undetermined (absent)", or the
unions "not known true" / "not known false". A literal is an atom with the set of truth states
it accepts: {t}, {f}, {u}, {f, u} or {t, u}.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import EngineError
from engine.model.content import All, Atom, Condition, NoneKnown, Not

T, F, U = "t", "f", "u"
States = frozenset[str]
Branch = tuple[tuple[Atom, States], ...]  # literals, one per atom, in a stable order

MAX_BRANCHES = 256  # beyond this a condition would swamp durable_rules (it hangs near 1,300 rules)
# Bounds on the work of expanding one condition, so that a condition is refused in bounded time:
# 24 × `any: [c, not c]` has 2**24 combinations but only 2 consistent ones, and enumerating them
# all hung. Partial expansions may exceed MAX_BRANCHES (later literals can contradict them) but
# not MAX_PARTIAL, and at most MAX_WORK pairs are merged.
MAX_PARTIAL = 16 * MAX_BRANCHES
MAX_WORK = 1_000_000

_MODES = {"T": frozenset(T), "F": frozenset(F), "U": frozenset(U),
          "NT": frozenset({F, U}), "NF": frozenset({T, U})}
_FLIP = {"T": "F", "F": "T", "U": "U", "NT": "NF", "NF": "NT"}


@dataclass(frozen=True)
class Undetermined:
    """Compiler-internal: true exactly when `item` is undetermined (two-valued)."""

    item: Condition


class ConditionTooLargeError(EngineError):
    """A condition expands into more branches than durable_rules can take safely."""

    exit_code = 2

    def __init__(self, message: str, where: object = None):
        super().__init__(message)
        self.where = where  # the rule or score (a _model.Where), filled in by the compiler


def possible_states(atom: Atom) -> States:
    """`known` tests are never undetermined; a formula operand (`present`) is never false."""
    if atom.op == "known":
        return frozenset({T, F})
    if atom.op == "present":
        return frozenset({T, U})
    return frozenset({T, F, U})


def _literal(atom: Atom, mode: str) -> list[dict[Atom, States]]:
    states = _MODES[mode] & possible_states(atom)
    if not states:
        return []
    if states == possible_states(atom):
        return [{}]  # no constraint at all
    return [{atom: states}]


def _too_large() -> ConditionTooLargeError:
    return ConditionTooLargeError(f"a condition expands into more than {MAX_BRANCHES} branches")


def _bounded(branches_: list[dict[Atom, States]]) -> list[dict[Atom, States]]:
    if len(branches_) > MAX_PARTIAL:
        raise _too_large()
    return branches_


def _conjoin(parts: list[list[dict[Atom, States]]]) -> list[dict[Atom, States]]:
    """Every consistent combination of one branch per part, distinct, in product order.

    Built part by part, dropping contradictions and duplicates as they appear: a contradictory or
    repeated prefix only ever extends to contradictions or repeats, so the result (and its order
    of first occurrence) is that of the full product, in work bounded by MAX_WORK.
    """
    acc: list[dict[Atom, States]] = [{}]
    work = 0
    for part in parts:
        work += len(acc) * len(part)
        if work > MAX_WORK:
            raise _too_large()
        seen: dict[frozenset[tuple[Atom, States]], dict[Atom, States]] = {}
        for prefix in acc:
            for branch in part:
                merged = dict(prefix)
                for atom, states in branch.items():
                    merged[atom] = merged.get(atom, states) & states
                if all(merged.values()):  # an empty state set is a contradiction: drop the branch
                    seen.setdefault(frozenset(merged.items()), merged)
        acc = list(seen.values())
        if len(acc) > MAX_PARTIAL:
            raise _too_large()
    if len(acc) > MAX_BRANCHES:
        raise _too_large()
    return acc


def _expand(cond: Condition | Undetermined, mode: str) -> list[dict[Atom, States]]:
    if isinstance(cond, Atom):
        return _literal(cond, mode)
    if isinstance(cond, Not):
        return _expand(cond.item, _FLIP[mode])
    if isinstance(cond, Undetermined):
        if mode in ("T", "NF"):
            return _expand(cond.item, "U")
        if mode in ("F", "NT"):
            return _bounded(_expand(cond.item, "T") + _expand(cond.item, "F"))
        return []
    if isinstance(cond, NoneKnown):
        # Two-valued: true when every item is "not known true", false when one is known true.
        if mode in ("T", "NF"):
            return _conjoin([_expand(c, "NT") for c in cond.items])
        if mode in ("F", "NT"):
            return _bounded([b for c in cond.items for b in _expand(c, "T")])
        return []
    items = list(cond.items)
    conj, disj = (("T", "NF"), ("F", "NT")) if isinstance(cond, All) else (("F", "NT"), ("T", "NF"))
    if mode in conj:      # every item must satisfy the mode
        return _conjoin([_expand(c, mode) for c in items])
    if mode in disj:      # one item suffices
        return _bounded([b for c in items for b in _expand(c, mode)])
    # Undetermined: some item undetermined, and none decides the whole (no false item for
    # `all`, no true item for `any`).
    other = "NF" if isinstance(cond, All) else "NT"
    out: list[dict[Atom, States]] = []
    for i, item in enumerate(items):
        out = _bounded(out + _conjoin([_expand(item, "U")] + [_expand(c, other) for j, c in enumerate(items) if j != i]))
    return out


def branches(cond: Condition | Undetermined, mode: str) -> list[Branch]:
    """The branches (distinct, in a stable order) under which `cond` is in truth `mode`."""
    seen: dict[Branch, None] = {}
    for branch in _expand(cond, mode):
        key = tuple(sorted(branch.items(), key=lambda kv: (kv[0].fact, kv[0].op, repr(kv[0].value),
                                                             sorted(kv[1]))))
        seen.setdefault(key, None)
    if len(seen) > MAX_BRANCHES:
        raise _too_large()
    return list(seen)
