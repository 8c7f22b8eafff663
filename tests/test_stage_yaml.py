"""Stage 1a (engine/load/yamlio.py): `read_yaml` reads strictly, locates every value, and never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import position

from engine.loader.yamlio import read_yaml
from engine.model.source import Document


def read(tmp_path: Path, text: str) -> tuple[Document, list[tuple[str, int, int, str]]]:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    doc, problems = read_yaml(path, "doc.yaml")
    assert all(p.file == "doc.yaml" for p in problems)
    return doc, [(p.code, p.line, p.col, p.message) for p in problems]


# YAML 1.1 would turn all of these but the last two into booleans, dates or timestamps.
@pytest.mark.parametrize("scalar, value", [
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"), ("n", "n"),
    ("True", "True"), ("FALSE", "FALSE"),
    ("2026-12-01", "2026-12-01"), ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"),
    ("true", True), ("false", False),
])
def test_only_true_and_false_are_booleans_and_dates_stay_text(tmp_path: Path, scalar: str, value: Any) -> None:
    doc, problems = read(tmp_path, f"v: {scalar}\n")
    assert problems == []
    assert doc.data == {"v": value} and type(doc.data["v"]) is type(value)


@pytest.mark.parametrize("scalar, value", [("3", 3), ("1.5", 1.5), ("'3'", "3"), ("~", None), ("null", None)])
def test_numbers_quotes_and_null_read_as_usual(tmp_path: Path, scalar: str, value: Any) -> None:
    doc, problems = read(tmp_path, f"v: {scalar}\n")
    assert (doc.data, problems) == ({"v": value}, [])


def test_every_nested_value_and_key_is_located(tmp_path: Path) -> None:
    text = "a: [1, {b: 2, c: [x, y]}]\nd:\n  - e: 1\n    f: g\n"
    doc, problems = read(tmp_path, text)
    assert problems == []
    path = tmp_path / "doc.yaml"
    expected = {
        ("a", 1, "c", 1): position(path, "y]"),   # in a flow sequence in a flow mapping in a flow sequence
        ("a", 1, "b", "$key"): position(path, "b: 2"),
        ("a", 1, "b"): position(path, "2,"),
        ("d", 0, "f"): position(path, "g\n"),     # in a block mapping in a block sequence
        ("d", 0, "f", "$key"): position(path, "f: g"),
        ("d", "$key"): position(path, "d:"),
    }
    assert {key: doc.where(key) for key in expected} == expected
    # A path with no value of its own is placed at its closest located ancestor.
    assert doc.where(("a", 1, "c", 7, "deeper")) == position(path, "[x, y]")


@pytest.mark.parametrize("text, place, key, data", [
    ("a: 1\nb: 2\na: 3\n", (3, 1), "a", {"a": 1, "b": 2}),
    ("top:\n  b: 1\n  b: 2\n", (3, 3), "b", {"top": {"b": 1}}),
    ("list:\n  - {k: 1, k: 2}\n", (2, 12), "k", {"list": [{"k": 1}]}),
], ids=["top-level", "nested-block", "flow-in-a-list"])
def test_a_duplicate_key_is_located_at_its_second_use_and_the_first_value_kept(
        tmp_path: Path, text: str, place: tuple[int, int], key: str, data: Any) -> None:
    doc, problems = read(tmp_path, text)
    assert problems == [("duplicate-key", *place, f"key '{key}' appears twice in this mapping")]
    assert doc.data == data


@pytest.mark.parametrize("text, place, message", [
    ("a: b: c\n", (1, 5), "mapping values are not allowed in this context"),
    ("a:\n\tb: 1\n", (2, 1), "found character that cannot start any token"),
    ("a: [1, 2\n", (2, 1), "did not find expected ',' or ']'"),
    ("a: 'x\n", (2, 1), "found unexpected end of stream"),
    ("a: 1\n---\nb: 2\n", (2, 1), "but found another document"),
], ids=["colon-in-plain-value", "tab-indent", "unclosed-flow-sequence", "unclosed-quote", "two-documents"])
def test_a_syntax_error_is_one_located_problem(tmp_path: Path, text: str, place: tuple[int, int], message: str) -> None:
    doc, problems = read(tmp_path, text)
    assert problems == [("yaml-syntax", *place, message)]
    assert doc.data is None


@pytest.mark.parametrize("text, place, kind", [
    ("1.5: x\n", (1, 1), "float"),
    ("ok: 1\n~: x\n", (2, 1), "NoneType"),
    ("? [a]\n: x\n", (1, 3), "list"),
], ids=["float", "null", "sequence"])
def test_a_key_that_is_not_text_is_refused_and_skipped(tmp_path: Path, text: str, place: tuple[int, int],
                                                       kind: str) -> None:
    doc, problems = read(tmp_path, text)
    assert problems == [("yaml-key", *place, f"a key must be text, not {kind}")]
    assert None not in doc.data and 1.5 not in doc.data


def test_an_integer_key_reads_as_text(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "3: x\n")
    assert (doc.data, problems) == ({"3": "x"}, [])


@pytest.mark.parametrize("text", ["", "# only a comment\n"], ids=["empty", "comment-only"])
def test_an_empty_document_has_no_data_and_no_problem(tmp_path: Path, text: str) -> None:
    doc, problems = read(tmp_path, text)
    assert (doc.data, problems) == (None, [])


def test_an_unreadable_file_is_a_problem_at_its_start(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"title: Caf\xe9\n")
    for path in (latin1, tmp_path / "absent.yaml"):
        _, problems = read_yaml(path, path.name)
        assert [(p.file, p.code, p.line, p.col) for p in problems] == [(path.name, "unreadable", 1, 1)]
