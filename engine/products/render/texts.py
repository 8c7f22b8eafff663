"""Small texts both formats of the review document share: units, conversions, ranges, types, people, outcomes."""

from __future__ import annotations

import re
from fractions import Fraction

from engine.model.content import Content, Conversion, FactSpec, Operand, Rule
from engine.products.words import number_words, unit_words, value_words


def then_words(rule: Rule) -> str:
    """What a rule does: its code, or "neutropenia_grade = severe"."""
    if rule.recommend:
        return rule.recommend
    if isinstance(rule.value, Operand) and rule.value.fact == rule.derive:
        return f"{rule.derive} = {rule.derive} as given"
    return f"{rule.derive} = {value_words(rule.value)}"


def rule_outcome(rule: Rule, content: Content) -> str:
    """What follows when a rule fires: "recommend <code> — <title>", or the derived value."""
    if rule.recommend:
        rec = content.catalogue.get(rule.recommend)
        return f"recommend {rule.recommend}" + (f" — {rec.title}" if rec else "")
    return then_words(rule)


def unit_text(unit: str | None) -> str:
    """'10*9/L (×10⁹/L)': the UCUM code and how it reads, or '' for none."""
    if not unit:
        return ""
    shown = unit_words(unit)
    return unit if shown == unit else f"{unit} ({shown})"


def _fraction(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def conversion_text(unit: str, conv: Conversion) -> str:
    """'/uL: × 1/1000', '[degF]: (value − 32) × 5/9', '10*3/uL: × 1' (into the canonical unit)."""
    if conv.add == 0 and conv.multiply == 1:
        rule = "× 1"
    elif conv.add == 0:
        rule = f"× {_fraction(conv.multiply)}"
    else:
        sign = "+" if conv.add > 0 else "−"
        rule = f"(value {sign} {_fraction(abs(conv.add))}) × {_fraction(conv.multiply)}"
    return f"{unit}: {rule}"


def range_text(spec: FactSpec) -> str:
    if spec.range is None:
        return ""
    low, high = spec.range
    unit = unit_words(spec.unit)
    return f"{number_words(low)} – {number_words(high)}" + (f" {unit}" if unit else "")


def type_text(spec: FactSpec) -> str:
    if spec.type == "enum":
        text = f"enum: {', '.join(spec.values)}"
        return text + (f" (or {spec.undetermined_label})" if spec.undetermined_label else "")
    return spec.type


def described(spec: FactSpec) -> str:
    """The description, then what each value means where the content says (with its sources)."""
    said = "".join(f" {m.value.capitalize()}: {m.text} [{', '.join(map(str, m.citations))}]" for m in spec.meaning)
    return spec.description + said


def people(entries: tuple[dict[str, str], ...]) -> str:
    return "; ".join(f"{e.get('name', '')}" + (f" ({e['role']})" if e.get("role") else "") for e in entries)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
