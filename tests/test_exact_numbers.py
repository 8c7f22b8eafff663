"""Thresholds are compared exactly: no conversion or formula rounds a value across a threshold."""

from __future__ import annotations

import pytest

import engine
from engine.run.explain import show


@pytest.mark.parametrize("facts", [
    {"anc": {"value": 499.99999999, "unit": "/uL"}, "temperature": 39},
    {"anc": 0.49999999999, "temperature": 39},
    {"anc": {"value": 0.00049999999999, "unit": "10*6/L"}, "temperature": 39},
    # ANC from the differential: 1.0 × 49.999999999 % = 0.49999999999
    {"wbc": 1.0, "neutrophils_pct": 49.999999999, "temperature": 39},
], ids=["per-uL", "bare", "per-L", "from-differential"])
def test_a_value_just_below_a_threshold_stays_below_it(guideline: engine.Guideline, facts: dict) -> None:
    result = guideline.evaluate(facts)
    assert result.derived["anc"] < 0.5
    assert result.derived["neutropenia_grade"] == "severe"
    assert result.derived["febrile_neutropenia"] is True
    assert "fn-empirical-iv-antibiotics" in result.codes


def test_exact_conversions_need_no_rounding(guideline: engine.Guideline) -> None:
    result = guideline.evaluate({"temperature": {"value": 100.4, "unit": "[degF]"}, "anc": 0.3})
    assert result.derived["temperature"] == 38.0
    result = guideline.evaluate({"anc": {"value": 500, "unit": "/uL"}})
    assert result.derived["anc"] == 0.5 and result.derived["neutropenia_grade"] == "moderate"


def test_explanations_show_every_digit_of_a_value() -> None:
    assert show(0.49999999999, "10*9/L") == "0.49999999999 ×10⁹/L"
    assert (show(38.0, "Cel"), show(0.3), show(7)) == ("38 °C", "0.3", "7")
