"""Missing facts in clinical order (contract section 8): what each could still decide, the most
urgent first; and what the derived values mean, where the content says.

Read from what the engine's undetermined firings recorded (`needed_for`, already followed
through undetermined derived facts), never from per-fact knowledge: a second guideline ranks
its own facts with no change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.model.content import Content
from engine.model.vocabulary import urgencies, urgency_rank
from engine.run.result import Decides, MissingFact


def decides(needed_for: Iterable[str], content: Content) -> Decides:
    """Only catalogue codes count as recommendations; derived facts (and any other target, such as
    the guideline's applicability) decide no recommendation by themselves."""
    targets = set(needed_for)
    catalogue = content.catalogue
    found = [catalogue[t].urgency for t in targets if t in catalogue]  # once per missing fact: kept lean
    by_urgency = tuple((u, found.count(u)) for u in urgencies() if u in found)
    derived = () if targets.isdisjoint(content.derived) else \
        tuple(name for name in content.derived if name in targets)
    return Decides(by_urgency[0][0] if by_urgency else None, len(found), by_urgency, derived)


def sort_key(missing: MissingFact) -> tuple[int, int, str]:
    """Immediate, urgent, routine, then facts deciding no recommendation; more decided first; name."""
    group = urgency_rank(missing.decides.urgency) if missing.decides.urgency else len(urgencies())
    return group, -missing.decides.recommendations, missing.fact


_KNOWN_LIMIT = 4096  # distinct target sets remembered per program; past it the memory starts again


def rank(needed: Mapping[str, Iterable[str]], content: Content,
         known: dict[frozenset[str], tuple[tuple[str, ...], Decides]] | None = None) -> tuple[MissingFact, ...]:
    """fact -> the targets it is needed for, as MissingFacts in the contract's order.

    `known`: what earlier rankings on the same content decided, by set of targets (facts of one
    patient often wait on the same targets, and patients on the same sets): decided once each."""
    if known is None:
        known = {}
    elif len(known) > _KNOWN_LIMIT:
        known.clear()
    facts = []
    for fact, targets in needed.items():
        key = frozenset(targets)
        found = known.get(key)
        if found is None:
            found = known[key] = (tuple(sorted(key)), decides(key, content))
        facts.append(MissingFact(fact, *found))
    return tuple(sorted(facts, key=sort_key))


def meanings(content: Content, derived: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """What each derived value means where the content says so, with its sources (JSON `meanings`)."""
    out: dict[str, dict[str, object]] = {}
    for name, spec in content.derived.items():
        meaning = spec.meaning_of(derived.get(name)) if name in derived else None
        if meaning is not None:
            out[name] = {"value": meaning.value, "text": meaning.text, "citations": list(meaning.citations)}
    return out
