"""Stage 1c (engine/load/folder.py): schema-valid YAML becomes typed content (`condition`, `value`, `build`)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import position
from test_stage_semantic import write_tiny

from engine.loader.folder import build, condition, read_folder, value
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Conversion,
    Formula,
    NoneKnown,
    Not,
    Operand,
    Where,
    atoms,
    operands,
)
from engine.model.source import Document

DOC = Document("test.yaml", None)
NOWHERE = Where(DOC, ())  # `where` takes no part in equality: expected objects need not be located


def atom(fact: str, op: str, v: Any, unit: str | None = None) -> Atom:
    return Atom(fact, op, v, NOWHERE, unit)


@pytest.mark.parametrize("data, expected", [
    ({"fact": "a", "is": True}, atom("a", "is", True)),
    ({"fact": "x", "lt": 5, "unit": "1"}, atom("x", "lt", 5, "1")),
    ({"fact": "e", "in": ["low", "high"]}, atom("e", "in", ("low", "high"))),
    ({"fact": "x", "known": True}, atom("x", "known", True)),
    # One atom kind, "is known" (itself never unknown); `known: false` is its negation.
    ({"fact": "x", "known": False}, Not(atom("x", "known", True))),
    # Two tests on one fact are both required, in the order lt, le, gt, ge, is, in, known.
    ({"fact": "x", "ge": 1, "lt": 5}, All((atom("x", "lt", 5), atom("x", "ge", 1)))),
    ({"fact": "x", "unit": "1"}, atom("x", "known", True, "1")),
    ({"all": [{"fact": "a", "is": True}, {"any": [{"fact": "b", "is": True}, {"not": {"fact": "c", "is": True}}]}]},
     All((atom("a", "is", True), Any_((atom("b", "is", True), Not(atom("c", "is", True))))))),
    ({"none_known": [{"fact": "a", "is": True}, {"fact": "c", "is": True}]},
     NoneKnown((atom("a", "is", True), atom("c", "is", True)))),
], ids=["is", "comparison-with-unit", "in-becomes-a-tuple", "known-true", "known-false", "two-tests",
        "unit-only-is-known", "nested", "none-known"])
def test_condition_builds_atoms_and_connectives(data: dict[str, Any], expected: Condition) -> None:
    assert condition(data, DOC, ("when",)) == expected


def test_each_atom_remembers_the_path_of_its_test() -> None:
    data = {"all": [{"fact": "a", "is": True}, {"any": [{"fact": "x", "known": False}, {"fact": "x", "lt": 5}]}]}
    built = condition(data, DOC, ("rules", 3, "when"))
    assert [a.where.path for a in atoms(built)] == [
        ("rules", 3, "when", "all", 0, "is"),
        ("rules", 3, "when", "all", 1, "any", 0, "known"),
        ("rules", 3, "when", "all", 1, "any", 1, "lt"),
    ]


def test_value_builds_formulas_whose_operands_keep_their_defaults_and_paths() -> None:
    data = {"divide": [{"multiply": [{"fact": "wbc"}, {"add": [{"fact": "pct"}, {"fact": "bands", "default": 0}]}]},
                       100]}
    built = value(data, DOC, ("then", "value"))
    wbc, pct, bands = Operand("wbc", None, NOWHERE), Operand("pct", None, NOWHERE), Operand("bands", 0, NOWHERE)
    assert built == Formula("divide", (Formula("multiply", (wbc, Formula("add", (pct, bands)))), 100))
    assert [(o.fact, o.default, o.where.path) for o in operands(built)] == [
        ("wbc", None, ("then", "value", "divide", 0, "multiply", 0)),
        ("pct", None, ("then", "value", "divide", 0, "multiply", 1, "add", 0)),
        ("bands", 0, ("then", "value", "divide", 0, "multiply", 1, "add", 1)),
    ]


@pytest.mark.parametrize("data", [True, "high", 3, 2.5])
def test_value_keeps_a_plain_value(data: Any) -> None:
    assert value(data, DOC, ("then", "value")) == data


# --- build: the whole folder ----------------------------------------------------------------------

def built(folder: Path) -> Content:
    docs, problems = read_folder(folder)
    assert problems == []
    return build(docs)


def test_build_rules_facts_and_catalogue(tmp_path: Path) -> None:
    content = built(write_tiny(tmp_path))
    rules = {rule.id: rule for rule in content.rules}
    assert [rule.id for rule in content.rules] == ["count-given", "low", "r-low", "r-total"]
    assert rules["count-given"].derive == "count" and rules["count-given"].value == Operand("count", None, NOWHERE)
    assert rules["count-given"].when == atom("count", "known", True)
    assert (rules["low"].derive, rules["low"].value, rules["low"].recommend) == ("low_count", True, None)
    assert rules["r-low"].recommend == "r-low" and rules["r-low"].citations == (1,)
    assert rules["r-low"].when == All((atom("low_count", "is", True), atom("kind", "is", "low")))
    # located: the atom's test value in rules/rules.yaml
    kind = atoms(rules["r-low"].when)[1]
    assert kind.where.doc.where(kind.where.path) == position(tmp_path / "rules" / "rules.yaml", "low}]}")

    count = content.facts["count"]
    assert (count.type, count.unit, count.range, count.loinc, count.derived) == ("number", "10*9/L", (0, 100),
                                                                                 ("111-1",), False)
    assert count.units == (("/uL", Conversion(Fraction(1, 1000), Fraction(0))),)
    assert content.facts["kind"].values == ("low", "high")
    assert content.derived["count"].derived and content.derived["total_range"].type == "range"
    assert content.fact_read("count") is content.derived["count"]
    assert content.fact_read("count", "count") is content.facts["count"]
    assert set(content.catalogue) == {"r-low", "r-total"} and content.catalogue["r-low"].urgency == "urgent"
    assert content.metadata.id == "tiny" and content.metadata.effective_date is None
    assert set(content.references) == {1} and content.references[1].citation == "A source."


def test_build_scores_and_their_items(tmp_path: Path) -> None:
    (score,) = built(write_tiny(tmp_path)).scores
    assert (score.id, score.fact, score.range_fact, score.citations) == ("tiny-score", "total", "total_range", (1,))
    assert score.applies_when == atom("flag", "is", True)
    (item,) = score.items
    assert item.id == "item-a"
    assert [(opt.points, opt.when) for opt in item.options] == [(1, atom("kind", "is", "low")),
                                                               (0, atom("kind", "is", "high"))]
    high = item.options[1].when
    assert isinstance(high, Atom)
    assert high.where.path == ("scores", 0, "items", 0, "points", 1, "when", "is")


def test_build_traceability_when_present_and_none_when_absent(tmp_path: Path) -> None:
    content = built(write_tiny(tmp_path / "with"))
    assert content.traceability == ({"section": "S", "statement": "A statement.", "references": [1],
                                     "rules": ["low", "r-low"], "codes": ["r-low", "r-total"]},)
    assert set(content.where) == {"guideline", "facts", "catalogue", "traceability"}

    bare = write_tiny(tmp_path / "without")
    (bare / "traceability.yaml").unlink()
    (bare / "scores.yaml").unlink()
    content = built(bare)
    assert content.traceability == () and content.scores == ()
    assert set(content.where) == {"guideline", "facts", "catalogue"}
