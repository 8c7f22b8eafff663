"""Exact unit conversion: canonical = (value + add) * multiply, computed with fractions."""

from __future__ import annotations

from fractions import Fraction

from engine.model.content import Conversion

DIGITS = 10  # results are rounded here so 100.4 [degF] is 38 Cel, not 38.00000000000001


def exact(value: float) -> Fraction:
    """The decimal a person wrote (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


def to_float(value: Fraction) -> float:
    return float(round(value, DIGITS))


def convert(value: float, conversion: Conversion) -> float:
    """`value` in canonical units."""
    return to_float((exact(value) + conversion.add) * conversion.multiply)
