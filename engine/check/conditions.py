"""Semantic checks of conditions: every atom names a known fact and tests it with the right type and unit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.errors import Problem, did_you_mean
from engine.model.content import Atom, Condition, Content, FactSpec, Where, atoms
from engine.model.vocabulary import COMPARISONS


def known_names(content: Content) -> list[str]:
    """Every fact name a condition or formula may read, for did-you-mean suggestions."""
    return sorted(set(content.facts) | set(content.derived))


def value_problems(spec: FactSpec, v: Any, where: Where) -> Iterator[Problem]:
    """`v` as a value of `spec` (an `is`/`in` operand, or the value a rule derives)."""
    if spec.type == "boolean" and not isinstance(v, bool):
        yield where.problem("type-mismatch", f"'{spec.name}' is boolean; compare it with true or false, not {v!r}")
    elif spec.type == "enum" and v not in spec.values:
        yield where.problem("type-mismatch", f"{v!r} is not a value of '{spec.name}'"
                            f"{did_you_mean(str(v), spec.values)}; values: {', '.join(spec.values)}")
    elif spec.type in ("number", "range"):
        yield where.problem("type-mismatch", f"'{spec.name}' is a {spec.type}; test it with lt / le / gt / ge")


def _comparison(content: Content, atom: Atom, spec: FactSpec, where: Where) -> Iterator[Problem]:
    """lt / le / gt / ge: a number, and a threshold unit the fact accepts."""
    if spec.type != "number":
        yield atom.where.problem("type-mismatch",
                                 f"'{atom.fact}' is {spec.type}; '{atom.op}' compares numbers (use is / in)")
        return
    units = content.units_of(atom.fact)
    if atom.unit is not None and units is not None and units.conversion(atom.unit) is None:
        accepted = [units.unit or "", *dict(units.units)]
        yield where.problem("unit-mismatch", f"unit '{atom.unit}' is not a unit of '{atom.fact}' "
                            f"(canonical {units.unit}; accepted: {', '.join(accepted)})", "unit")


def unknown_fact_message(content: Content, name: str, deriving: str | None) -> str:
    """Why `name` reads no fact here: a rule reading the very fact it derives (with no input of that
    name) would wait for itself; anything else is an unknown name, with a suggestion."""
    if name == deriving and name in content.derived:
        return f"a rule deriving '{name}' cannot read '{name}' itself (there is no input fact '{name}')"
    return f"unknown fact '{name}'{did_you_mean(name, known_names(content))}"


def atom_problems(content: Content, atom: Atom, deriving: str | None) -> Iterator[Problem]:
    """One atom, read as it is inside a rule deriving `deriving` (None outside derivations)."""
    spec = content.fact_read(atom.fact, deriving)
    # The atom's own mapping: `fact` and `unit` are keys beside the test (`lt`, `is`, ...).
    where = Where(atom.where.doc, atom.where.path[:-1])
    if spec is None:
        yield where.problem("unknown-fact", unknown_fact_message(content, atom.fact, deriving), "fact")
        return
    if atom.op in COMPARISONS:
        yield from _comparison(content, atom, spec, where)
    elif atom.unit is not None:
        yield where.problem("unit-mismatch", f"'{atom.fact}' is {spec.type}: a unit makes no sense here", "unit")
    if atom.op in ("is", "in"):
        for v in atom.value if atom.op == "in" else (atom.value,):
            yield from value_problems(spec, v, atom.where)


def all_conditions(content: Content) -> Iterator[tuple[Condition, str | None]]:
    """Every condition of the guideline, with the derived fact its rule derives (None for scores,
    the population and expectations)."""
    if content.population is not None:
        yield content.population.when, None
    for expected in content.guidance_expected:
        yield expected.when, None
    for rule in content.rules:
        yield rule.when, rule.derive
    for score in content.scores:
        yield score.applies_when, None
        for item in score.items:
            for opt in item.options:
                yield opt.when, None


def condition_atoms(content: Content) -> Iterator[Problem]:
    """Check: each atom of every rule, score and population condition (unknown fact, type, unit, value)."""
    for cond, deriving in all_conditions(content):
        for atom in atoms(cond):
            yield from atom_problems(content, atom, deriving)
