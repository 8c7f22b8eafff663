"""`guideline cohort -o OUT.parquet`: the same rows as NDJSON, as typed Parquet columns, streamed in row
groups, written to a temporary name and renamed only when the run completes."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine import cli
from engine.cohort import execute, parquet
from engine.cohort.staged import Staged
from engine.errors import RuleEngineError
from engine.model.content import FactSpec

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cohort" / "patients.ndjson"
# Lines a real input has besides good ones: a converted unit, malformed JSON, no id, an unknown
# fact, an id given twice, an empty object of facts.
EXTRA = ['{"id": "deg-f", "facts": {"temperature": {"value": 101.3, "unit": "[degF]"}, "anc": 0.4, "age": 30}}',
         '{"id": "broken", "facts": ',
         '{"facts": {"anc": 1.0}}',
         '{"id": "unknown", "facts": {"ancc": 1.0}}',
         '{"id": "deg-f", "facts": {"anc": 3.0}}',
         '{"id": "empty", "facts": {}}']


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic patients (benchmarks/synth.py), the example's 4, and the awkward lines above."""
    spec = importlib.util.spec_from_file_location("synth", ROOT / "benchmarks" / "synth.py")
    assert spec is not None and spec.loader is not None
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    out = tmp_path_factory.mktemp("parquet")
    synth.write(40, out, seed=11)
    lines = [*EXAMPLE.read_text().splitlines(), *EXTRA, *(out / "patients.ndjson").read_text().splitlines()]
    path = out / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def as_ndjson(record: dict[str, Any], derived_columns: dict[str, str]) -> dict[str, Any]:
    """A Parquet row read back in the shape of its NDJSON row (derived: the non-null values)."""
    row: dict[str, Any] = {
        "id": record["id"], "status": record["status"],
        "guideline": {"id": record["guideline_id"], "version": record["guideline_version"],
                      "digest": record["guideline_digest"]},
        "applicability": None if record["applicability"] is None else {
            "status": record["applicability"], "population": record["applicability_population"],
            "because": record["applicability_because"]},
        "codes": record["codes"], "missing": record["missing"], "problems": record["problems"],
        "derived": {fact: record[column] for fact, column in derived_columns.items()
                    if record[column] is not None}}
    if record["notes"]:
        row["notes"] = record["notes"]
    return row


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """An NDJSON row with its null derived values left out (null and absent mean the same)."""
    return {**row, "derived": {k: v for k, v in row["derived"].items() if v is not None}}


def test_parquet_rows_equal_the_ndjson_rows_field_by_field(scheduler: str, cohort_file: Path,
                                                           tmp_path: Path) -> None:
    code, text, _ = run("cohort", str(cohort_file), "--scheduler", scheduler)
    assert code == 0
    target = tmp_path / "rows.parquet"
    code, out, err = run("cohort", str(cohort_file), "--scheduler", scheduler, "-o", str(target))
    assert code == 0 and out == "", err
    expected = [json.loads(line) for line in text.splitlines()]
    table = pq.read_table(target)
    derived = json.loads(table.schema.metadata[b"derived_columns"])
    records = table.to_pylist()
    assert len(records) == len(expected) == 4 + len(EXTRA) + 40
    for record, row in zip(records, expected):
        assert set(row["derived"]) <= set(derived), row["id"]
        for fact, column in derived.items():  # null exactly where the JSON has null or nothing
            assert record[column] == row["derived"].get(fact), (row["id"], fact)
        assert as_ndjson(record, derived) == comparable(row)
    by_id: dict[str, dict[str, Any]] = {}
    for record in records:  # the first of an id given twice (the later line is the invalid one)
        by_id.setdefault(record["id"], record)
    assert by_id["deg-f"]["status"] == "evaluated" and records[8]["id"] == "deg-f" and records[8]["problems"]
    assert by_id["deg-f"]["temperature"] == pytest.approx((101.3 - 32) * 5 / 9)   # converted, canonical
    assert [r["status"] for r in records].count("invalid") == [r["status"] for r in expected].count("invalid") >= 5
    assert any(r["id"] is None and r["problems"] for r in records)                 # no id: a null id
    assert by_id["pat-004"]["anc"] is None and by_id["pat-004"]["lymphopenia"] is True
    assert by_id["empty"]["notes"] and by_id["pat-001"]["mascc_score_range"] == [0.0, 24.0]


def test_the_columns_are_typed_from_the_resolved_model(guideline: engine.Guideline) -> None:
    layout = parquet.layout(pa, guideline)
    schema = layout.schema
    strings = pa.list_(pa.string())
    assert schema.field("id").type == pa.string() and schema.field("codes").type == strings
    assert schema.field("missing").type == strings and schema.field("applicability_because").type == strings
    expected = {"boolean": pa.bool_(), "number": pa.float64(), "enum": pa.string(), "range": pa.list_(pa.float64())}
    for name, spec in guideline.content.derived.items():
        assert schema.field(layout.derived[name]).type == expected[spec.type], name
    converted = [n for n, s in guideline.content.facts.items() if s.units and n not in guideline.content.derived]
    assert converted and all(schema.field(n).type == pa.float64() for n in converted)
    assert schema.names[:12] == [c.name for c in parquet.fixed_columns(pa)] and not layout.json_columns
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert meta["guideline_digest"] == guideline.digest and meta["guideline_id"] == guideline.id
    assert meta["guideline_version"] == guideline.version


def test_a_value_no_arrow_type_holds_is_a_json_column_and_a_clash_is_prefixed() -> None:
    labelled = FactSpec("febrile", "boolean", True, "d", undetermined_label="unknown")
    column, is_json = parquet.derived_column(pa, labelled, "febrile")
    assert is_json and column.type == pa.string()
    assert [column.value({"derived": d}) for d in ({"febrile": True}, {"febrile": "unknown"}, {})] == \
        ["true", '"unknown"', None]
    assert parquet.derived_column(pa, FactSpec("x", "duration", True, "d"), "x")[1]
    assert not parquet.derived_column(pa, FactSpec("r", "enum", True, "d", values=("a",),
                                                   undetermined_label="undetermined"), "r")[1]


def test_a_derived_fact_named_like_a_row_column_is_prefixed(guideline: engine.Guideline,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    name = next(iter(guideline.content.derived))
    real = parquet.fixed_columns
    monkeypatch.setattr(parquet, "fixed_columns", lambda pa_: [*real(pa_), parquet.Column(name, pa.string(),
                                                                                          lambda row: None)])
    layout = parquet.layout(pa, guideline)
    assert layout.derived[name] == parquet.PREFIX + name and len(set(layout.schema.names)) == len(layout.schema)


def _write(guideline: engine.Guideline, rows: list[dict[str, Any]], path: Path, row_group: int,
           chunk: int | None = None) -> Any:
    writer = parquet.ParquetRows(guideline, Staged(path), parquet.pyarrow_modules(), row_group, chunk)
    try:  # as engine/cohort/command.py does
        for row in rows:
            writer.write(json.dumps(row))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return pq.ParquetFile(path)


def _row(guideline: engine.Guideline, i: int, derived: dict[str, Any]) -> dict[str, Any]:
    key = {"id": guideline.id, "version": guideline.version, "digest": guideline.digest}
    return {"id": f"p{i}", "status": "evaluated", "guideline": key,
            "applicability": {"status": "applies", "population": "everyone", "because": []},
            "codes": [], "derived": derived, "missing": [], "problems": []}


def test_rows_are_written_in_row_groups_as_they_come(guideline: engine.Guideline, tmp_path: Path) -> None:
    rows = [_row(guideline, i, {}) for i in range(23)]
    for chunk, groups in ((None, [5, 5, 5, 5, 3]), (2, [6, 6, 6, 5])):  # chunks of 2 rows: groups of 6
        path = tmp_path / f"g{chunk}.parquet"
        file = _write(guideline, rows, path, row_group=5, chunk=chunk)
        assert [file.metadata.row_group(i).num_rows for i in range(file.metadata.num_row_groups)] == groups
        assert [r["id"] for r in file.read().to_pylist()] == [f"p{i}" for i in range(23)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g2.parquet", "gNone.parquet"]


def test_a_derived_value_without_a_column_stops_the_run_and_leaves_no_file(guideline: engine.Guideline,
                                                                          tmp_path: Path) -> None:
    with pytest.raises(RuleEngineError, match="have no Parquet column"):
        _write(guideline, [_row(guideline, 0, {"not_a_fact": 1})], tmp_path / "x.parquet", 5)
    with pytest.raises(RuleEngineError, match="Parquet column"):
        _write(guideline, [_row(guideline, 0, {next(iter(guideline.content.derived)): {"a": 1}})],
               tmp_path / "y.parquet", 5)
    assert list(tmp_path.iterdir()) == []


def _values(spec: FactSpec) -> st.SearchStrategy[Any]:
    number = st.floats(allow_nan=False, allow_infinity=False, width=64)
    return st.none() | {"boolean": st.booleans(), "number": number | st.integers(-10**6, 10**6),
                        "enum": st.sampled_from([*spec.values, *([spec.undetermined_label] if spec.undetermined_label
                                                                  else [])] or ["x"]),
                        "range": st.tuples(number, number).map(list)}.get(spec.type, st.none())


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_derived_values_read_back_as_written(bundled: engine.Guideline, tmp_path_factory: pytest.TempPathFactory,
                                                 data: st.DataObject) -> None:
    specs = parquet.derived_specs(bundled.content)
    rows = [_row(bundled, i, {s.name: data.draw(_values(s)) for s in specs}) for i in range(data.draw(st.integers(1, 9)))]
    path = tmp_path_factory.mktemp("prop") / "p.parquet"
    file = _write(bundled, rows, path, row_group=4)
    derived = json.loads(file.schema_arrow.metadata[b"derived_columns"])
    for record, row in zip(file.read().to_pylist(), rows, strict=True):
        assert as_ndjson(record, derived) == comparable(row)


# --- refusals and failures ---------------------------------------------------------------------------

def test_parquet_is_never_written_to_standard_output(tmp_path: Path) -> None:
    for argv, said in ((["--format", "parquet"], "Parquet is written to a file, not to standard output"),
                       (["--format", "parquet", "-o", "-"], "give -o FILE.parquet"),
                       (["-o", str(tmp_path / "r.parquet"), "--format", "ndjson"], "a .parquet file holds Parquet")):
        code, out, err = run("cohort", str(EXAMPLE), "--workers", "1", *argv)
        assert code == 2 and out == "" and said in err and "Traceback" not in err, argv
    assert list(tmp_path.iterdir()) == []


def test_a_parquet_file_that_cannot_be_written_is_said_before_the_run(tmp_path: Path) -> None:
    for target in (tmp_path / "no" / "r.parquet", tmp_path):
        code, out, err = run("cohort", str(EXAMPLE), "--workers", "1", "-o", str(target), "--format", "parquet")
        assert code == 2 and f"cannot write {target}" in err and "cohort:" not in err, err


def test_without_pyarrow_parquet_output_says_how_to_install_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)       # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, out, err = run("cohort", str(EXAMPLE), "--workers", "1", "-o", str(tmp_path / "r.parquet"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert "Parquet output needs pyarrow: pip install 'neutropenia-guideline[parquet]'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["rows.parquet", "rows.ndjson"])
def test_a_failed_run_leaves_no_file_and_an_old_one_untouched(scheduler: str, tmp_path: Path, name: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = execute.ordered_map

    def fails_midway(*args: Any, **kwargs: Any) -> Any:
        for n, done in enumerate(real(*args, **kwargs)):
            if n == 1:
                raise RuleEngineError("a worker was lost")
            yield done

    monkeypatch.setattr(execute, "ordered_map", fails_midway)
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps({"id": f"p{i}", "facts": {"anc": 0.3}}) + "\n" for i in range(30)))
    target = tmp_path / name
    real_batches = execute.batches
    monkeypatch.setattr(execute, "batches", lambda items, size: real_batches(items, 10))  # 3 batches
    code, _, err = run("cohort", str(source), "--scheduler", scheduler, "-o", str(target))
    assert code == 1 and "a worker was lost" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson"]
    target.write_bytes(b"an earlier run's rows\n")
    assert run("cohort", str(source), "--scheduler", scheduler, "-o", str(target))[0] == 1
    assert target.read_bytes() == b"an earlier run's rows\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.ndjson", name])
