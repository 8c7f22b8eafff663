"""Why a catalogue code fired, did not fire, or is undetermined, as the engine decided it.

Python does not evaluate a condition here. A why-not evaluation runs the why-not program
(engine/compile/program.py `compile_why_not`: the guideline's program plus each recommendation
rule's known-false branches) on durable_rules; each rule's outcome is the kind of branch that
fired for it: RECOMMEND (fired), RECOMMEND_UNDETERMINED (undecided parts, and the input facts they
wait for) or RECOMMEND_FALSE (the parts known false, with the values matched).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from engine.compile.encoding import INPUT, TYPE, Program
from engine.compile.kleene import T, U
from engine.compile.program import compile_why_not
from engine.errors import BadInputError, RuleEngineError, did_you_mean
from engine.model.content import Content, Rule, atoms
from engine.run.actions import Evaluation, Part
from engine.run.assemble import result as assemble
from engine.run.explain import show
from engine.run.lazy import LazyRuleset
from engine.run.result import Result, WhyNotEntry, WhyNotRule

MAX_WHY_NOT_CODES = 64  # more codes than a catalogue has is a malformed request, not a question


class UnknownCodeError(BadInputError):
    """A why-not question names a code the catalogue does not have (exit 2)."""


def checked_codes(content: Content, codes: Iterable[Any]) -> tuple[str, ...]:
    """The codes asked about, each once, in the order asked; UnknownCodeError naming every unknown one."""
    asked = list(codes)
    if len(asked) > MAX_WHY_NOT_CODES:
        raise UnknownCodeError(f"why-not: {len(asked)} codes asked; at most {MAX_WHY_NOT_CODES}")
    unknown = [c for c in asked if not isinstance(c, str) or c not in content.catalogue]
    if unknown:
        raise UnknownCodeError("; ".join(
            f"unknown recommendation code {c!r}{did_you_mean(c, content.catalogue) if isinstance(c, str) else ''}"
            for c in dict.fromkeys(map(str, unknown))))
    return tuple(dict.fromkeys(asked))


def why_not_ruleset(content: Content, program: Program) -> LazyRuleset:
    """The why-not program (`compile_why_not`) and its ruleset, built on the first why-not question."""
    return LazyRuleset(lambda: compile_why_not(content, program))


def explain(content: Content, why: LazyRuleset, facts: dict[str, Any], guideline: dict[str, str],
            converted: dict[str, float], codes: Sequence[str]) -> Result:
    """The patient's result (the same as a normal evaluation's) with `why_not` for each code."""
    program, ruleset = why.get()
    ev = Evaluation(content, program, facts, ruleset.constants)
    ev.explain_undecided = True
    ruleset.run({TYPE: INPUT, **facts}, ev.handle)
    base = assemble(ev, guideline, converted)
    return replace(base, why_not=tuple(_entry(ev, base, code) for code in codes))


def _entry(ev: Evaluation, base: Result, code: str) -> WhyNotEntry:
    rules = [r for r in ev.content.rules if r.recommend == code]
    rec = next((r for r in base.recommendations if r.code == code), None)
    outcomes = tuple(_outcome(ev, base, rule, rec.because if rec and rule.id in rec.rules else None)
                     for rule in rules)
    statuses = {o.status for o in outcomes}
    status = next((s for s in ("fired", "undetermined") if s in statuses), "not-fired")
    if rec is not None:
        because = rec.because  # the same chain as in recommendations
    elif not rules:
        because = ("no rule recommends this code",)
    else:
        because = tuple(dict.fromkeys(line for rule, o in zip(rules, outcomes, strict=True)
                                      for line in (_line(rule, o), *_derivations(ev, base, rule, o))))
    return WhyNotEntry(code, status, tuple(because), outcomes)


def _derivations(ev: Evaluation, base: Result, rule: Rule, outcome: WhyNotRule) -> list[str]:
    """How each derived fact a false part reads got its value (one level, as `explanations` has it),
    so "febrile_neutropenia is false" comes with the finding that made it false."""
    if outcome.status != "not-fired":
        return []
    names = dict.fromkeys(p.atom.fact for p in ev.false_parts.get(rule.id, ())
                          if p.atom.binding is not None and p.atom.binding.derived and p.atom.fact in base.derived)
    return [f"{name} = {show(base.derived[name], ev.unit(name))} {line}"
            for name in names for line in base.explanations.get(name, ())]


def _line(rule: Rule, outcome: WhyNotRule) -> str:
    head = f"rule {rule.id} ({rule.title}): "
    if outcome.status == "undetermined":
        return head + f"not decided: {'; '.join(outcome.because)}; waits for: {', '.join(outcome.waits_for)}"
    return head + "; ".join(outcome.because)


def _outcome(ev: Evaluation, base: Result, rule: Rule, fired: tuple[str, ...] | None) -> WhyNotRule:
    if fired is not None:
        return WhyNotRule(rule.id, "fired", tuple(line for line in fired if line.startswith(f"rule {rule.id} (")))
    if any(f.rule == rule.id for f in ev.recs.get(rule.recommend or "", ())):
        # The engine matched the condition, but the result does not carry the recommendation: a
        # stage after matching withheld it (contract section 7: a patient outside the population).
        a = base.applicability
        reason = "; ".join(a.because) or a.status
        return WhyNotRule(rule.id, "not-fired", (f"its condition holds, but this guideline is for "
                                                 f"{a.population} and does not apply: {reason}",))
    if rule.id in ev.undecided:
        # The literals that need "undetermined" and met no value (a part already true is not undecided).
        undecided = [p for p in _ordered(rule, ev.undecided[rule.id])
                     if U in p.states and (p.actual is None or isinstance(p.actual, list))]
        return WhyNotRule(rule.id, "undetermined", tuple(dict.fromkeys(map(_undecided, undecided))),
                          _waits_for(ev, base, undecided))
    if rule.id in ev.false_parts:
        return WhyNotRule(rule.id, "not-fired", tuple(_false(ev, p) for p in _ordered(rule, ev.false_parts[rule.id])))
    # Kleene expansion gives every rule exactly one outcome; none means the compiled program is wrong.
    raise RuleEngineError(f"rule '{rule.id}' reached no outcome (true, false or undetermined) for this patient")


def _undecided(part: Part) -> str:
    """'temperature is not given'; 'mascc_score is undetermined (between 15 and 26)'."""
    if part.atom.binding is None or not part.atom.binding.derived:
        return f"{part.atom.fact} is not given"
    bounds = f" ({show(part.actual)})" if isinstance(part.actual, list) else ""
    return f"{part.atom.fact} is undetermined{bounds}"


# A comparison in words, as a clinician reads it; a false one is said as the comparison that holds.
_WORDS = {"lt": "is below", "le": "is at most", "gt": "is above", "ge": "is at least"}
_HOLDS_WHEN_FALSE = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


def _false(ev: Evaluation, part: Part) -> str:
    """A known-false part in words: 'clinically_stable_hours 12 h is below 24 h'; a derived fact
    matched as not applicable has no value to show."""
    atom = part.atom
    if part.actual is None and atom.binding is not None and atom.binding.derived:
        return f"{atom.fact} does not apply"
    if atom.op in _WORDS and isinstance(part.actual, (int, float)) and not isinstance(part.actual, bool):
        op = atom.op if T in part.states else _HOLDS_WHEN_FALSE[atom.op]
        unit = ev.unit(atom.fact)
        return f"{atom.fact} {show(part.actual, unit)} {_WORDS[op]} {show(atom.value, atom.unit or unit)}"
    return part.text


def _ordered(rule: Rule, parts: list[Part]) -> list[Part]:
    """In the order the condition is written (firings arrive in the engine's order)."""
    order = {a.fact: i for i, a in reversed(list(enumerate(atoms(rule.when))))}
    return sorted(parts, key=lambda p: order.get(p.atom.fact, len(order)))


def _waits_for(ev: Evaluation, base: Result, undecided: list[Part]) -> tuple[str, ...]:
    """The absent input facts behind the undecided parts, through undetermined derived facts, in the
    order of `missing` (the facts an undecided derived fact waits for are what its firings recorded)."""
    found: set[str] = set()
    todo = [p.atom.fact for p in undecided]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in ev.content.facts and name not in ev.patient:
            found.add(name)
        found |= ev.missing_inputs.get(name, set())
        todo += ev.missing_via.get(name, ())
    ranked = [m.fact for m in base.missing if m.fact in found]
    return (*ranked, *sorted(found - set(ranked)))
