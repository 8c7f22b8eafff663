"""What to find out next, in a clinician's words: each missing fact's ask phrase and what knowing it
would decide, and which derived facts still wait for data. Shared by the text report and the CDS card.

Every word comes from the content (facts' `label` and `ask`) and from the ranked `missing` of the
result: nothing here knows a fact, a threshold or a code.
"""

from __future__ import annotations

from collections import Counter

from engine.compile.encoding import Program
from engine.model.content import Content
from engine.run.result import MissingFact, Result

TOP = 5  # missing facts shown before the tail is folded
# Targets of `needed_for` that are neither codes nor derived facts, named by the contract (section 7).
_TARGET_WORDS = {"applicability": "whether the guideline applies"}


def label(content: Content, name: str) -> str:
    """A fact's plain name (derived facts first: `anc` reads as the derived ANC)."""
    spec = content.derived.get(name) or content.facts.get(name)
    return spec.display if spec is not None else name


def ask(content: Content, name: str) -> str:
    spec = content.facts.get(name)
    return spec.ask_phrase if spec is not None else f"Find out {name}"


def listing(words: list[str], most: int = 3) -> str:
    """'a', 'a and b', 'a, b and c', 'a, b, c and 2 more' ('' for none)."""
    if not words:
        return ""
    if len(words) > most:
        words = [*words[:most], f"{len(words) - most} more"]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def decides(content: Content, missing: MissingFact) -> str:
    """'fever, febrile neutropenia and 3 more — 5 immediate, 4 urgent and 11 routine recommendations'."""
    d = missing.decides
    others = [_TARGET_WORDS.get(t, t) for t in missing.needed_for
              if t not in content.catalogue and t not in content.derived]
    named = [label(content, name) for name in d.derived] + others
    counts = listing([f"{n} {urgency}" for urgency, n in d.by_urgency], most=len(d.by_urgency))
    recs = f"{counts} recommendation{'s' if d.recommendations != 1 else ''}" if d.recommendations else ""
    if named and recs:
        return f"{listing(named)} — {recs}"
    return listing(named) if named else recs or "nothing yet"


def line(content: Content, missing: MissingFact) -> str:
    """'Measure the temperature: it decides febrile neutropenia — 5 immediate … recommendations'."""
    return f"{ask(content, missing.fact)}: it decides {decides(content, missing)}"


def questions(program: Program, missing: tuple[MissingFact, ...]) -> list[list[MissingFact]]:
    """The ranked missing facts as questions to ask: facts that would decide exactly the same
    things (e.g. the temperature and whether a fever was sustained) are alternatives, asked
    together. Within one, the fact more compiled rules test comes first: it settles the decision
    in more ways (a temperature can also rule fever out). Groups keep the contract's order of
    `missing`; only ties inside a group are reordered, and only here, for people."""
    tested = Counter(atom.fact for action in program.actions.values()
                     for pattern in action.patterns for atom, _ in pattern.literals)
    groups: dict[tuple[str, ...], list[MissingFact]] = {}
    for m in missing:
        groups.setdefault(m.needed_for, []).append(m)
    return [sorted(group, key=lambda m: -tested[m.fact]) for group in groups.values()]


def question(content: Content, group: list[MissingFact]) -> str:
    """'Measure the temperature, and find out whether …: it decides …' for one question."""
    lead, *others = group
    alternatives = "".join(f", and {_lower_first(ask(content, m.fact))}" for m in others)
    return f"{ask(content, lead.fact)}{alternatives}: it decides {decides(content, lead)}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def undecided(content: Content, result: Result) -> list[tuple[str, list[str]]]:
    """(derived fact, the missing facts it waits for, ranked) for each derived fact still undetermined.

    One that is absent without waiting for any fact (a score that does not apply) is not listed.
    """
    out = []
    for name, spec in content.derived.items():
        value = result.derived.get(name)
        if value is not None and value != spec.undetermined_label:
            continue
        waits = [m.fact for m in result.missing if name in m.needed_for]
        if waits:
            out.append((name, waits))
    return out


def is_undecided(content: Content, name: str, value: object) -> bool:
    spec = content.derived.get(name)
    return value is None or (spec is not None and spec.undetermined_label is not None
                             and value == spec.undetermined_label)
