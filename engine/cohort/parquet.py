"""The rows of `guideline cohort` as a Parquet file: typed columns a reader queries without parsing JSON.

One Parquet row per NDJSON row, in the same order, invalid rows included. The fixed columns carry
the row's fields (`guideline` flattened to three strings, `applicability` to its status,
population and reasons); then one column per value the row's `derived` can hold, typed from the
resolved model: each derived fact of the guideline (boolean -> bool, number -> float64, enum ->
string, range -> list<float64>) and each input fact that may be given in another unit (its
canonical value, float64, when it was converted). Null is exactly the JSON's null or absence:
undetermined, not converted, or an invalid row. The guideline's id, version and digest are also
the file's key-value metadata.

Streamed: rows are buffered by column, turned into Arrow arrays every CHUNK rows and written as
one row group per ROW_GROUP rows (pyarrow.parquet.ParquetWriter), so the driver holds at most one
row group (~1 KB a row in Arrow) whatever the cohort's size. pyarrow is the optional extra
`parquet`: a well-kept library writing a columnar format we would not write ourselves; imported
only when Parquet is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.cohort.staged import Staged
from engine.errors import BadInputError, RuleEngineError
from engine.guideline import Guideline
from engine.model.content import Content, FactSpec

# Rows per row group: readers favour large groups; 50,000 rows wrote 25 % smaller and faster than
# 10,000 (synthetic rows), for ~60 MB on the driver.
ROW_GROUP = 50_000
CHUNK = 1_000        # parsed rows held in Python before they become Arrow arrays
INSTALL = "Parquet output needs pyarrow: pip install 'neutropenia-guideline[parquet]'"
# A derived fact named like a fixed column gets this prefix (fact names never contain a dot).
PREFIX = "derived."


def pyarrow_modules() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or BadInputError saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise BadInputError(INSTALL) from exc
    return pyarrow, pyarrow.parquet


@dataclass(frozen=True)
class Column:
    name: str
    type: Any                             # a pyarrow DataType
    value: Callable[[dict[str, Any]], Any]


def _guideline(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row["guideline"][key]


def _applicability(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row["applicability"][key] if row["applicability"] is not None else None


def fixed_columns(pa: Any) -> list[Column]:
    strings = pa.list_(pa.string())
    return [
        Column("id", pa.string(), lambda row: row["id"]),   # null: a line with no usable id
        Column("status", pa.string(), lambda row: row["status"]),
        Column("guideline_id", pa.string(), _guideline("id")),
        Column("guideline_version", pa.string(), _guideline("version")),
        Column("guideline_digest", pa.string(), _guideline("digest")),
        Column("applicability", pa.string(), _applicability("status")),     # null: an invalid row
        Column("applicability_population", pa.string(), _applicability("population")),
        Column("applicability_because", strings, _applicability("because")),
        Column("codes", strings, lambda row: row["codes"]),
        Column("missing", strings, lambda row: row.get("missing")),        # most important first
        Column("problems", strings, lambda row: row["problems"]),
        Column("notes", strings, lambda row: row.get("notes", [])),        # the JSON omits it when empty
    ]


def derived_specs(content: Content) -> list[FactSpec]:
    """Every fact a row's `derived` can name: the derived facts, then the inputs given in units."""
    inputs = [spec for name, spec in content.facts.items() if spec.units and name not in content.derived]
    return [*content.derived.values(), *inputs]


def _as_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _derived(name: str, encode: Callable[[Any], Any] | None = None) -> Callable[[dict[str, Any]], Any]:
    if encode is None:
        return lambda row: row["derived"].get(name)
    return lambda row: encode(row["derived"].get(name))


def derived_column(pa: Any, spec: FactSpec, column: str) -> tuple[Column, bool]:
    """The column of one fact of `derived`, and whether it holds JSON text. A non-enum fact with an
    `undetermined_label` is JSON text: its values are then a number/boolean/range *or* that label,
    which no single Arrow type holds; so is a type this mapping does not know."""
    typed = {"boolean": pa.bool_(), "number": pa.float64(), "enum": pa.string(),
             "range": pa.list_(pa.float64())}.get(spec.type)
    if typed is None or (spec.undetermined_label is not None and spec.type != "enum"):
        return Column(column, pa.string(), _derived(spec.name, _as_json)), True
    return Column(column, typed, _derived(spec.name)), False


@dataclass(frozen=True)
class Layout:
    columns: list[Column]
    derived: dict[str, str]     # fact -> its column
    json_columns: list[str]     # columns holding JSON text
    schema: Any                 # the pyarrow Schema, with the guideline in its metadata


def layout(pa: Any, guideline: Guideline) -> Layout:
    columns = fixed_columns(pa)
    taken = {c.name for c in columns}
    derived: dict[str, str] = {}
    json_columns: list[str] = []
    for spec in derived_specs(guideline.content):
        name = PREFIX + spec.name if spec.name in taken else spec.name
        column, is_json = derived_column(pa, spec, name)
        columns.append(column)
        derived[spec.name] = name
        if is_json:
            json_columns.append(name)
    metadata = {"guideline_id": guideline.id, "guideline_version": guideline.version,
                "guideline_digest": guideline.digest, "derived_columns": json.dumps(derived),
                "json_columns": json.dumps(json_columns)}
    schema = pa.schema([pa.field(c.name, c.type) for c in columns], metadata=metadata)
    return Layout(columns, derived, json_columns, schema)


class ParquetRows:
    """Rows into a staged Parquet file: parsed rows become Arrow arrays every CHUNK rows (a parsed
    row held in Python costs ~4 KB, in Arrow well under 1 KB), and the arrays one row group every
    ROW_GROUP rows."""

    def __init__(self, guideline: Guideline, staged: Staged, modules: tuple[Any, Any],
                 row_group: int | None = None, chunk: int | None = None) -> None:
        self.pa, parquet = modules
        self.layout = layout(self.pa, guideline)
        self.staged = staged
        self.row_group = row_group or ROW_GROUP
        self.chunk = min(chunk or CHUNK, self.row_group)
        self.known = set(self.layout.derived)
        self.buffer: list[list[Any]] = [[] for _ in self.layout.columns]
        self.chunks: list[list[Any]] = [[] for _ in self.layout.columns]   # Arrow arrays, per column
        self.buffered = self.converted = 0
        try:
            self.writer = parquet.ParquetWriter(staged.file, self.layout.schema, compression="zstd")
        except BaseException:
            staged.discard()
            raise

    def write(self, text: str, row: dict[str, Any] | None = None) -> None:
        data = json.loads(text) if row is None else row
        unknown = set(data["derived"]) - self.known
        if unknown:  # never dropped in silence: the row would lose a value its NDJSON has
            raise RuleEngineError(f"row {data['id']!r}: derived value(s) {', '.join(sorted(unknown))} have no "
                                  "Parquet column")
        for values, column in zip(self.buffer, self.layout.columns):
            values.append(column.value(data))
        self.buffered += 1
        if self.buffered >= self.chunk:
            self._convert()
        if self.converted >= self.row_group:
            self._flush()

    def _convert(self) -> None:
        """The buffered rows as one Arrow array per column."""
        for values, arrays, column in zip(self.buffer, self.chunks, self.layout.columns):
            try:
                arrays.append(self.pa.array(values, type=column.type))
            except (self.pa.ArrowInvalid, self.pa.ArrowTypeError) as exc:
                raise RuleEngineError(f"Parquet column {column.name} ({column.type}): {exc}") from exc
        self.converted += self.buffered
        self.buffer = [[] for _ in self.layout.columns]
        self.buffered = 0

    def _flush(self) -> None:
        """What is converted, as one row group."""
        if not self.converted:
            return
        columns = [self.pa.chunked_array(arrays, type=column.type)
                   for arrays, column in zip(self.chunks, self.layout.columns)]
        table = self.pa.Table.from_arrays(columns, schema=self.layout.schema)
        try:
            self.writer.write_table(table, row_group_size=self.converted)
        except OSError as exc:
            raise self.staged.failed(exc) from exc
        self.chunks = [[] for _ in self.layout.columns]
        self.converted = 0

    def close(self) -> None:
        try:
            if self.buffered:
                self._convert()
            self._flush()
            self.writer.close()
            self.staged.commit()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise self.staged.failed(exc) from exc
            raise

    def abort(self) -> None:
        """The writer closed before its file (else pyarrow closes it later, onto a closed file), and
        the file thrown away; an error closing what is discarded is no news."""
        try:
            if self.writer.is_open:
                self.writer.close()
        except (OSError, ValueError):
            pass
        finally:
            self.staged.discard()
