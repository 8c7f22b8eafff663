"""Exact unit conversion: canonical = (value + add) * multiply, computed with fractions."""

from __future__ import annotations

from fractions import Fraction

from engine.model.content import Conversion


def exact(value: float) -> Fraction:
    """The decimal a person wrote (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


def to_float(value: Fraction) -> float:
    """The float nearest the exact value, never rounded to fewer digits: rounding to 10 digits made
    499.99999999 /uL read as 0.5 ×10⁹/L, on the wrong side of the severe-neutropenia threshold.
    (Computed from exact fractions, 100.4 [degF] is exactly 38 Cel without rounding.)"""
    return float(value)


def convert(value: float, conversion: Conversion) -> float:
    """`value` in canonical units."""
    return to_float((exact(value) + conversion.add) * conversion.multiply)
