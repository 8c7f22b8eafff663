"""Patient input: names, types, units and plausible ranges, checked before anything runs."""

from __future__ import annotations

import math
import reprlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import MAX_ECHO, MAX_PROBLEMS, InputFactsError, InputProblem, echo
from engine.errors import did_you_mean as _did_you_mean
from engine.model.content import Content, FactSpec
from engine.model.units import convert
from engine.run.explain import show
from engine.run.json_input import HugeNumber

# Said when a patient has no fact at all (`{}`, or only nulls): evaluating it is allowed, but
# silence would read like "nothing is wrong with this patient".
NO_FACTS = "no facts were given: nothing could be derived and every recommendation waits for data"

# A value from the input is quoted in a message at most this long: a 48 MB list was once echoed whole.
class _BoundedRepr(reprlib.Repr):
    repr_JsonObject = reprlib.Repr.repr_dict  # else reprlib falls back to the full builtin repr


_REPR = _BoundedRepr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = MAX_ECHO
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 2


def _shown(value: Any) -> str:
    """`type value` for a message, bounded in length and escaped (repr escapes control characters)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"int of about {int(value.bit_length() * 0.30103)} digits"  # repr() refuses 4,300+ digits
    if isinstance(value, HugeNumber):
        return f"the number {value!r} (too large)"
    kind = "dict" if isinstance(value, dict) else type(value).__name__
    return f"{kind} {_REPR.repr(value)}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The suggestion, skipped for a name far longer than any known one (difflib is quadratic)."""
    return _did_you_mean(name, known) if len(name) <= MAX_ECHO else ""


def _number(name: str, spec: FactSpec, raw: Any, problems: list[InputProblem]) -> float | None:
    unit = spec.unit
    value = raw
    if isinstance(raw, dict):
        twice = getattr(raw, "duplicates", ())
        if twice:
            problems.append(InputProblem(name, f"{', '.join(map(repr, twice))} given twice in the quantity"))
            return None
        extra = [] if len(raw) == 2 and "value" in raw and "unit" in raw else sorted(set(raw) - {"value", "unit"})
        if extra or "value" not in raw or "unit" not in raw:
            problems.append(InputProblem(name, "a quantity is {\"value\": number, \"unit\": \"UCUM\"}"
                            + (f"; unexpected key(s) {echo(', '.join(extra))}" if extra else "")))
            return None
        value, unit = raw["value"], raw["unit"]
        if not isinstance(unit, str):
            problems.append(InputProblem(name, f"unit must be text, not {type(unit).__name__}"))
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(InputProblem(name, f"expected a number, got {_shown(value)}"))
        return None
    if isinstance(value, int):
        # math.isfinite() and float() raise OverflowError beyond the largest double (1.8e308).
        if abs(value) > sys.float_info.max:
            problems.append(InputProblem(name, f"{_shown(value)} is too large to be a measurement"))
            return None
    elif isinstance(value, HugeNumber):
        problems.append(InputProblem(name, f"the number {value!r} is too large to be a measurement"))
        return None
    elif not math.isfinite(value):
        problems.append(InputProblem(name, f"{value!r} is not a number"))
        return None
    return canonical_quantity(name, spec, value, unit, problems)


def canonical_quantity(name: str, spec: FactSpec, value: float, unit: str | None,
                       problems: list[InputProblem]) -> float | None:
    """`value` in `unit` converted to the fact's canonical unit and range-checked; None (with the
    problem recorded under `name`) when the unit is not accepted or the value implausible."""
    conversion = spec.conversion(unit) if unit is not None else None
    if conversion is None:
        accepted = [spec.unit or "", *dict(spec.units)]
        problems.append(InputProblem(name, f"unit '{echo(str(unit))}' is not accepted{did_you_mean(str(unit), accepted)}; "
                        f"accepted units: {', '.join(accepted)}"))
        return None
    canonical = value if unit == spec.unit else convert(value, conversion)
    low, high = spec.range or (-math.inf, math.inf)
    if not low <= canonical <= high:
        given = f" ({echo(show(value), 24)} {unit})" if unit != spec.unit else ""
        problems.append(InputProblem(name, f"{echo(show(canonical), 24)} {spec.unit}{given} is outside the plausible range "
                        f"{show(low)}–{show(high)} {spec.unit}"))
        return None
    return canonical


def _value(name: str, spec: FactSpec, raw: Any, problems: list[InputProblem]) -> Any:
    """The canonical value of one given (non-null) fact, or None with its problem recorded."""
    if spec.type == "number":
        return _number(name, spec, raw, problems)
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        problems.append(InputProblem(name, f"expected true or false, got {_shown(raw)}"))
        return None
    if isinstance(raw, str) and raw in spec.values:
        return raw
    suggestion = did_you_mean(raw, spec.values) if isinstance(raw, str) else ""
    given = f"'{echo(raw)}'" if isinstance(raw, str) else _shown(raw)
    problems.append(InputProblem(name, f"{given} is not one of {', '.join(spec.values)}{suggestion}"))
    return None


def check_facts(content: Content, facts: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """(canonical facts, facts that were converted from another unit); raises InputFactsError.

    A null value means "not known" and is treated exactly like an absent fact. Every problem is
    found, but past MAX_PROBLEMS the unknown names are only counted: 3,000,000 of them once took
    a did-you-mean each.
    """
    if not isinstance(facts, Mapping):
        raise InputFactsError([InputProblem("", "patient facts must be a JSON object of fact names, not "
                                            f"{type(facts).__name__}")])
    # A problem with one of the guideline's facts is always kept (there are few); of the names the
    # guideline does not know, only the first MAX_PROBLEMS get a message, the others a count.
    known: list[tuple[int, InputProblem]] = []
    unknown: list[tuple[int, InputProblem]] = []
    omitted = 0
    canonical: dict[str, Any] = {}
    converted: dict[str, float] = {}
    twice = set(getattr(facts, "duplicates", ()))  # keys a JSON file gave twice (engine/run/json_input.py)
    specs = content.facts
    found: list[InputProblem] = []  # one list for every fact's problems: no list per fact
    for index, (name, raw) in enumerate(facts.items()):
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is not None and raw is not None and name not in twice:  # the usual case, first
            before = len(found)
            value = _value(name, spec, raw, found)
            if value is not None:
                canonical[name] = value
                if isinstance(raw, dict) and raw.get("unit") != spec.unit:
                    converted[name] = value
            if len(found) > before:
                known += [(index, problem) for problem in found[before:]]
            continue
        if spec is None and not (isinstance(name, str) and name in content.derived):
            if len(unknown) >= MAX_PROBLEMS:
                omitted += 1
            else:
                again = "; given twice" if name in twice else ""
                unknown.append((index, InputProblem(echo(str(name)), f"unknown fact"
                                                    f"{did_you_mean(str(name), content.facts)}{again}")))
            continue
        if name in twice:
            known.append((index, InputProblem(name, "given twice in the same JSON object")))
        elif spec is None:
            known.append((index, InputProblem(name, "is derived by the guideline, not an input fact")))
        # else: null, "not known", exactly like an absent fact
    room = max(0, MAX_PROBLEMS - len(known))
    omitted += max(0, len(unknown) - room)
    problems = [problem for _, problem in sorted(known + unknown[:room], key=lambda pair: pair[0])]
    if problems:
        raise InputFactsError(problems, omitted)
    return canonical, converted
