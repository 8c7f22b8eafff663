"""Semantic checks of facts.yaml's declarations: ranges, unit conversions, LOINC codes, types."""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import Problem
from engine.model.content import Content, FactSpec, Where


def _located(specs: dict[str, FactSpec]) -> Iterator[tuple[str, FactSpec, Where]]:
    """Every declared fact with its location (built specs always have one)."""
    for name, spec in specs.items():
        assert spec.where is not None
        yield name, spec, spec.where


def input_ranges(content: Content) -> Iterator[Problem]:
    """Check: an input's plausible range has min <= max."""
    for name, spec, where in _located(content.facts):
        if spec.range and spec.range[0] > spec.range[1]:
            yield where.problem("bad-range", f"range of '{name}' has min > max", "range")


def unit_conversions(content: Content) -> Iterator[Problem]:
    """Check: no accepted unit converts by multiplying by 0 (every value would read as 0)."""
    for name, spec, where in _located(content.facts):
        for unit, conv in spec.units:
            if conv.multiply == 0:
                yield where.problem("unit-mismatch", f"unit '{unit}' of '{name}' multiplies by 0", "units", unit)


def duplicate_loinc(content: Content) -> Iterator[Problem]:
    """Check: one LOINC code gives one fact, or FHIR input could not tell which fact a result is."""
    owner: dict[str, str] = {}
    for name, spec, where in _located(content.facts):
        for i, code in enumerate(spec.loinc):
            if code in owner and owner[code] != name:
                yield where.problem("duplicate-loinc", f"LOINC {code} is mapped to both '{owner[code]}' and "
                                    f"'{name}'", "loinc", i)
            owner.setdefault(code, name)


def input_and_derived_types(content: Content) -> Iterator[Problem]:
    """Check: a fact both given and derived (anc) has one type in both declarations."""
    for name, spec, where in _located(content.derived):
        if name in content.facts and spec.type != content.facts[name].type:
            yield where.problem("type-mismatch", f"'{name}' is {content.facts[name].type} as an input but "
                                f"{spec.type} as a derived fact", "type")


def value_meanings(content: Content) -> Iterator[Problem]:
    """Check: a derived fact's `meaning` explains only values it can take, citing defined references."""
    for name, spec, where in _located(content.derived):
        for m in spec.meaning:
            if m.value not in spec.values:
                yield where.problem("unknown-value", f"meaning given for '{m.value}', which is not a value of "
                                    f"'{name}' (values: {', '.join(spec.values) or 'none: not an enum'})",
                                    "meaning", m.value, "$key")
            for i, ref in enumerate(m.citations):
                if ref not in content.references:
                    yield where.problem("unknown-reference", f"reference {ref} is not defined",
                                        "meaning", m.value, "citations", i)
