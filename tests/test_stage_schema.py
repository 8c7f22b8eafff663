"""Stage 1b (engine/load/schema.py): `check(doc, kind)` turns JSON Schema errors into located, readable problems."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import position

from engine.loader import schema
from engine.loader.yamlio import read_yaml

RULE = "rules:\n  - id: a\n    title: T\n    when: {fact: a, is: true}\n    then: {recommend: x}\n    citations: [1]\n"
ALLOWED_IN_RULE = "allowed here: id, title, when, then, citations, rationale"
ALLOWED_IN_ATOM = "allowed here: fact, lt, le, gt, ge, unit, is, in, known"


def problems(tmp_path: Path, text: str, kind: str = "rules") -> list[tuple[str, tuple[int, int], str]]:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    doc, parse_problems = read_yaml(path, "doc.yaml")
    assert parse_problems == []
    return [(p.code, (p.line, p.col), p.message) for p in schema.check(doc, kind)]


def at(tmp_path: Path, needle: str) -> tuple[int, int]:
    return position(tmp_path / "doc.yaml", needle)


def test_a_valid_rule_has_no_problem(tmp_path: Path) -> None:
    assert problems(tmp_path, RULE) == []


@pytest.mark.parametrize("old, new, key, message", [
    ("citations:", "citatons:", "citatons", f"unknown key 'citatons' (did you mean 'citations'?); {ALLOWED_IN_RULE}"),
    ("is: true", "iss: true", "iss", f"unknown key 'iss' (did you mean 'is'?); {ALLOWED_IN_ATOM}"),
    ("title: T\n", "title: T\n    note: N\n", "note", f"unknown key 'note'; {ALLOWED_IN_RULE}"),
], ids=["rule-key-typo", "atom-key-typo-inside-oneOf", "no-close-key"])
def test_an_unknown_key_is_reported_at_the_key_with_a_suggestion(tmp_path: Path, old: str, new: str, key: str,
                                                                   message: str) -> None:
    found = problems(tmp_path, RULE.replace(old, new))
    assert found == [("unknown-key", at(tmp_path, key + ":"), message)]


def test_a_misspelt_required_key_is_reported_once_as_the_typo(tmp_path: Path) -> None:
    assert problems(tmp_path, RULE.replace("title:", "titel:")) == [
        ("unknown-key", at(tmp_path, "titel"), f"unknown key 'titel' (did you mean 'title'?); {ALLOWED_IN_RULE}")]


def test_a_required_key_replaced_by_an_unrelated_one_is_reported_twice(tmp_path: Path) -> None:
    """Only a suggestion ties the unknown key to the missing one; without it both are news."""
    found = problems(tmp_path, RULE.replace("title:", "name:"))
    assert sorted(found) == [("missing-key", at(tmp_path, "id: a"), "'title' is required here"),
                             ("unknown-key", at(tmp_path, "name"), f"unknown key 'name'; {ALLOWED_IN_RULE}")]


def test_a_missing_key_is_reported_at_its_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, RULE.replace("    title: T\n", "")) == [
        ("missing-key", at(tmp_path, "id: a"), "'title' is required here")]


# A condition is a oneOf (atom | all | any | not | none_known): the raw error is "... is not valid
# under any of the given schemas"; the headline is the error inside the branch the editor meant.
@pytest.mark.parametrize("when, code, token, message", [
    ("{fact: a, lt: low}", "schema", "low", "rules/0/when/lt: 'low' is not of type 'number'"),
    ("{fact: a, lte: 1}", "unknown-key", "lte", f"unknown key 'lte' (did you mean 'lt'?); {ALLOWED_IN_ATOM}"),
    ("{any: [{fact: a, lt: x}]}", "schema", "x}", "rules/0/when/any/0/lt: 'x' is not of type 'number'"),
    ("{not: {fact: a, lt: low}}", "schema", "low", "rules/0/when/not/lt: 'low' is not of type 'number'"),
    ("{none_known: [{fact: a, in: yes}]}", "schema", "yes",
     "rules/0/when/none_known/0/in: 'yes' is not of type 'array'"),
    ("{all: [{fact: a, is: true}, {any: [{fact: b, lte: 1}]}]}", "unknown-key", "lte",
     f"unknown key 'lte' (did you mean 'lt'?); {ALLOWED_IN_ATOM}"),
    ("{fact: A, is: true}", "schema", "A,", "rules/0/when/fact: 'A' does not match '^[a-z][a-z0-9_]*$'"),
], ids=["atom-threshold", "atom-key", "in-any", "in-not", "in-none-known", "two-levels-down", "fact-name"])
def test_a_condition_reports_the_error_of_the_branch_it_fits(tmp_path: Path, when: str, code: str, token: str,
                                                             message: str) -> None:
    text = RULE.replace("{fact: a, is: true}", when)
    assert problems(tmp_path, text) == [(code, at(tmp_path, token), message)]
    assert "is not valid under any of the given schemas" not in message


def test_an_enum_value_outside_the_schema_names_the_values(tmp_path: Path) -> None:
    text = "recommendations:\n  c: {kind: do, urgency: asap, title: T, text: t}\n"
    assert problems(tmp_path, text, "catalogue") == [
        ("schema", at(tmp_path, "asap"),
         "recommendations/c/urgency: 'asap' is not one of ['immediate', 'urgent', 'routine']")]
