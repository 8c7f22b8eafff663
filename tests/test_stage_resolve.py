"""The resolve stage (engine/check/resolve.py): every atom and operand bound once, thresholds canonical."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from conftest import replace_once

import engine
from engine.check.resolve import resolve
from engine.model.content import Atom, Condition, Content, Not, Operand, atoms, operands
from engine.pipeline import STAGES, analyse


def _atoms_of(content: Content) -> list[Atom]:
    found = [a for rule in content.rules for a in atoms(rule.when)]
    for score in content.scores:
        found += atoms(score.applies_when)
        found += [a for item in score.items for opt in item.options for a in atoms(opt.when)]
    return found


def _rule(content: Content, rule_id: str):
    return next(r for r in content.rules if r.id == rule_id)


def test_the_pipeline_names_its_stages_in_order() -> None:
    assert [name for name, _ in STAGES] == ["read", "build", "semantic", "resolve", "compile", "digest"]


def test_built_content_is_unbound_and_resolved_content_binds_every_atom_and_operand() -> None:
    built = analyse(until="semantic").content
    assert built is not None and not built.resolved
    assert all(a.binding is None for a in _atoms_of(built))
    content, problems = resolve(built)
    assert problems == [] and content.resolved
    assert all(a.binding is not None and a.binding.spec.name == a.fact for a in _atoms_of(content))
    ops = [o for r in content.rules for o in operands(r.value)]
    assert ops and all(o.binding is not None for o in ops)


def test_a_rule_deriving_a_fact_reads_the_input_of_that_name_and_others_read_the_derived_fact() -> None:
    content = engine.load().content
    # anc-from-differential derives anc from wbc and the differential when anc is not given.
    derive = _rule(content, "anc-from-differential")
    anc_atoms = [a for a in atoms(derive.when) if a.fact == "anc"]
    assert anc_atoms and all(a.binding is not None and not a.binding.derived for a in anc_atoms)
    grade = _rule(content, "neutropenia-grade-severe")
    (anc,) = [a for a in atoms(grade.when) if a.fact == "anc"]
    assert anc.binding is not None and anc.binding.derived and anc.binding.spec.derived


def test_thresholds_are_canonical_with_their_exact_value(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "rules" / "derived.yaml", "{fact: anc, lt: 0.5, unit: 10*9/L}",
                 "{fact: anc, lt: 500, unit: /uL}")
    content = engine.load(bundled_copy).content
    (anc,) = [a for a in atoms(_rule(content, "neutropenia-grade-severe").when) if a.fact == "anc"]
    assert (anc.value, anc.unit) == (0.5, "10*9/L")
    assert anc.binding is not None and anc.binding.exact == Fraction(1, 2) and anc.binding.written == (500, "/uL")
    # Written in the canonical unit: the value stays as written (90 stays an integer, 1.0 a float).
    bundled = engine.load().content
    (sbp,) = atoms(_rule(bundled, "hypotension").when)
    assert (sbp.value, sbp.unit, sbp.binding.written if sbp.binding else "unbound") == (90, "mm[Hg]", None)


def test_the_same_threshold_written_in_two_units_is_the_same_atom(bundled_copy: Path) -> None:
    before = engine.load().content
    replace_once(bundled_copy / "rules" / "derived.yaml", "{fact: anc, lt: 0.5, unit: 10*9/L}",
                 "{fact: anc, lt: 500, unit: /uL}")
    after = engine.load(bundled_copy).content
    assert _rule(before, "neutropenia-grade-severe").when == _rule(after, "neutropenia-grade-severe").when


def test_a_threshold_converted_from_fahrenheit_uses_add_and_multiply(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "rules" / "febrile-neutropenia.yaml", "{fact: temperature, ge: 38.3, unit: Cel}",
                 "{fact: temperature, ge: 100.94, unit: \"[degF]\"}")
    content = engine.load(bundled_copy).content
    temps = [a for a in atoms(_rule(content, "febrile-true").when) if a.fact == "temperature"]
    assert [(a.value, a.unit) for a in temps] == [(38.3, "Cel")]
    assert temps[0].binding is not None and temps[0].binding.exact == Fraction(383, 10)


def test_resolving_keeps_every_connective_and_only_binds_the_leaves() -> None:
    built = analyse(until="semantic").content
    assert built is not None
    resolved, _ = resolve(built)

    def shape(cond: Condition) -> object:
        if isinstance(cond, Atom):
            return (cond.fact, cond.op)
        if isinstance(cond, Not):
            return ("not", shape(cond.item))
        return (type(cond).__name__, tuple(shape(c) for c in cond.items))

    for before, after in zip(built.rules, resolved.rules, strict=True):
        assert shape(before.when) == shape(after.when), before.id
    kinds = {type(c).__name__ for r in resolved.rules for c in _walk(r.when)}
    assert {"All", "Any_", "Not", "Atom"} <= kinds  # the check above saw every connective


def _walk(cond: Condition):
    yield cond
    if isinstance(cond, Not):
        yield from _walk(cond.item)
    elif not isinstance(cond, Atom):
        for item in cond.items:
            yield from _walk(item)


def test_operands_bind_to_the_input_they_read() -> None:
    content = engine.load().content
    ops: list[Operand] = operands(_rule(content, "anc-from-differential").value)
    assert {o.fact for o in ops} == {"wbc", "neutrophils_pct", "bands_pct"}
    assert all(o.binding is not None and not o.binding.derived for o in ops)
