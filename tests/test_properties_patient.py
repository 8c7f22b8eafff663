"""Property-based tests of patient JSON input (hypothesis).

Two properties:
- robustness: any JSON-ish input, valid or broken (unknown names, wrong types, out-of-range and
  huge numbers, odd units, nulls, deep nesting, odd strings), through the API and through
  `guideline evaluate - --format json`, gives a result or a clear bad-input error (exit 0 or 2),
  never a traceback, in bounded time; exit 0 prints exactly one JSON document;
- agreement: for valid generated patients (plausible ranges, canonical and converted units), the
  engine's derived facts and recommendation codes equal those of the independent three-valued
  evaluator in tests/threevalued.py, which reads the same YAML.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from threevalued import Reference, exact

import engine
from engine import cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from patients import short_number  # noqa: E402  (a Fraction as a short JSON number, as the benchmarks write them)

KLEENE = ROOT / "tests" / "fixtures" / "kleene"
REF = Reference.read(engine.BUNDLED_GUIDELINE)
TIME_BOUND = 10.0  # seconds for one evaluation of a small input, imports and warm-up included


def examples(n: int) -> int:
    """`n` examples under the "ci" profile, 20 times more under "long" (HYPOTHESIS_PROFILE=long)."""
    return n * 20 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else n


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`.

    SIGALRM interrupts Python code; a hang inside C code (durable_rules) is still caught by the
    wall-clock check afterwards, once it returns.
    """
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < seconds, f"took longer than {seconds} s"




def run_cli(text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with bounded(TIME_BOUND):
        code = cli.main(["evaluate", "-", "--format", "json"], out, err, io.StringIO(text))
    return code, out.getvalue(), err.getvalue()


def check_cli_outcome(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert code in (0, 2), (code, err[-3000:])
    if code == 0:
        json.loads(out)  # exactly one JSON document (json.loads refuses trailing data)
    else:
        assert err.strip(), "exit 2 without a message"
        assert out == "", "bad input printed a partial result"


# --- strategies: broken and hostile input --------------------------------------------------------

NAMES = sorted(REF.inputs)
UNITS = sorted({u for spec in REF.inputs.values() for u in [spec.get("unit"), *(spec.get("units") or {})] if u})
odd_text = st.one_of(st.text(max_size=30),
                     st.sampled_from(["", " ", "\x00", "\u202e", "\ud800", "\ufeff", "NaN",
                                      "1e400", "0x10", "true", "ANC", "anc ", "\n", "é" * 50]))
names = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES).map(lambda n: n + "x"),
                  st.sampled_from(NAMES).map(str.upper), odd_text)
# 9...9 of n digits; at most 4,000 so that json.dumps can write it (longer ones are written as text below)
huge_int = st.integers(min_value=15, max_value=4000).map(lambda n: 10**n - 1)
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), huge_int,
                    huge_int.map(lambda n: -n), st.integers(-10, 10).map(lambda e: 10.0 ** (e * 30)))
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)
quantities = st.fixed_dictionaries({"value": st.one_of(numbers, scalars)},
                                   optional={"unit": st.one_of(st.sampled_from(UNITS), odd_text, scalars),
                                             "extra": scalars})
values = st.recursive(st.one_of(scalars, quantities),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(names, inner, max_size=4)),
                      max_leaves=12)
patients = st.dictionaries(names, values, max_size=8)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


documents = st.one_of(
    patients.map(json.dumps),
    values.map(json.dumps),                                        # not an object at top level
    patients.map(lambda p: json.dumps(p)[:-1] if len(p) else "{"),  # truncated
    st.integers(1, 200_000).map(lambda d: '{"anc": ' + nested(d) + "}"),  # deep nesting
    st.integers(1, 200_000).map(lambda d: '{"anc": ' + '{"value": ' * d + "1" + "}" * d + "}"),
    st.integers(300, 5000).map(lambda n: '{"anc": ' + "1" * n + "}"),  # huge literal integers
    st.integers(300, 5000).map(lambda n: '{"anc": 0.' + "4" * n + "}"),
    st.integers(1, 3).map(lambda n: '{"anc": 0.3, "anc": 2.0}' * n),   # duplicates / trailing data
    st.text(max_size=50),                                            # not JSON at all
)


@given(documents)
def test_any_patient_document_gives_exit_0_or_2_and_never_a_traceback(fast_main: None, text: str) -> None:
    check_cli_outcome(*run_cli(text))


# The hostile documents of issue 9, each its own test so that the generated ones above still run
# while one of these fails.
KNOWN_DOCUMENTS = {
    "400-digit integer": '{"anc": ' + "9" * 400 + "}",           # was OverflowError
    "4,401-digit integer": '{"anc": ' + "9" * 4401 + "}",        # was ValueError "Exceeds the limit"
    "nested 100,000 deep": '{"anc": ' + nested(100_000) + "}",   # was RecursionError
    "499.99999999 /uL": '{"anc": {"value": 499.99999999, "unit": "/uL"}, "temperature": 39}',
    "no facts": "{}",
}


@pytest.mark.parametrize("case", sorted(KNOWN_DOCUMENTS))
def test_known_hostile_documents_give_exit_0_or_2(fast_main: None, case: str) -> None:
    check_cli_outcome(*run_cli(KNOWN_DOCUMENTS[case]))


def api_outcome(guideline: engine.Guideline, facts: Any) -> None:
    with bounded(TIME_BOUND):
        try:
            result = guideline.evaluate(facts)
        except engine.EngineError as exc:
            assert exc.exit_code == 2, exc.report()
            assert all(line.strip() for line in exc.report())
            return
    json.dumps(result.to_dict(), allow_nan=False)   # a result is always plain, finite JSON


@given(patients)
def test_the_api_returns_a_result_or_raises_a_bad_input_error(bundled: engine.Guideline, facts: dict) -> None:
    api_outcome(bundled, facts)


@pytest.mark.parametrize(("name", "digits"), [("anc", 400),     # issue 9: was OverflowError
                                              ("copd", 4400)])  # was ValueError in the message's repr
def test_known_hostile_api_values_are_bad_input(bundled: engine.Guideline, name: str, digits: int) -> None:
    api_outcome(bundled, {name: 10**digits - 1})


@settings(max_examples=examples(5))
@given(st.integers(2_000, 20_000), st.sampled_from(["unknown_fact_", "anc", "\x1b[31m"]))
def test_many_unknown_facts_cost_bounded_time_and_a_bounded_report(fast_main: None, count: int,
                                                                   prefix: str) -> None:
    """Issue 9, cost bounds: every unknown name got a did-you-mean; the report must be capped."""
    text = json.dumps({f"{prefix}{i}": i for i in range(count)})
    code, out, err = run_cli(text)
    check_cli_outcome(code, out, err)
    assert code == 2
    assert len(err) < 64 * 1024, f"{len(err)} characters of error report for {count} unknown facts"
    assert "\x1b" not in err, "control characters in a name are echoed raw"


@settings(max_examples=examples(20))
@given(st.binary(max_size=200), st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]),
       st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_any_bytes_in_a_patient_file_give_exit_0_or_2(fast_main: None, tmp_path_factory: Any, noise: bytes,
                                                      prefix: bytes, encoding: str) -> None:
    """Files are read as bytes: non-UTF-8, UTF-16, a BOM (issue 9: UnicodeDecodeError tracebacks)."""
    path = tmp_path_factory.mktemp("bytes") / "patient.json"
    path.write_bytes(prefix + '{"anc": 0.3, "temperature": 39}'.encode(encoding) + noise)
    out, err = io.StringIO(), io.StringIO()
    with bounded(TIME_BOUND):
        code = cli.main(["evaluate", str(path), "--format", "json"], out, err)
    check_cli_outcome(code, out.getvalue(), err.getvalue())


# --- strategies: valid patients ------------------------------------------------------------------

def thresholds(ref: Reference) -> dict[str, set[Fraction]]:
    """Every threshold each input fact is compared with, in canonical units, from the YAML."""
    found: dict[str, set[Fraction]] = {}

    def walk(c: Any) -> None:
        if isinstance(c, dict):
            if "fact" in c:
                for key in ("lt", "le", "gt", "ge"):
                    if key in c:
                        found.setdefault(c["fact"], set()).add(ref.threshold(c["fact"], c[key], c.get("unit")))
            for v in c.values():
                walk(v)
        elif isinstance(c, list):
            for v in c:
                walk(v)

    walk([r["when"] for r in ref.rules])
    walk(ref.scores)
    walk(ref.population)  # the ages beside 18 years, where the guideline starts to apply
    return found


def number_strategy(ref: Reference, name: str, cuts: set[Fraction]) -> st.SearchStrategy[Any]:
    spec = ref.inputs[name]
    lo, hi = (exact(v) for v in spec.get("range", [0, 1000]))
    near = {c + d for c in cuts for d in (Fraction(0), Fraction(1, 10), Fraction(-1, 10),
                                          Fraction(1, 100), Fraction(-1, 100), Fraction(-1, 10**8))}
    special = sorted(v for v in near | {lo, hi} if lo <= v <= hi)
    canonical = st.one_of(st.sampled_from(special) if special else st.nothing(),
                          st.integers(int(lo * 100), int(hi * 100)).map(lambda n: Fraction(n, 100))
                          .filter(lambda v: lo <= v <= hi))

    def written(value: Fraction, how: str) -> Any:
        if how != "bare":
            conversion = (spec.get("units") or {}).get(how)
            if conversion is not None:
                add, mul = Fraction(str(conversion.get("add", 0))), Fraction(str(conversion["multiply"]))
                number = short_number(value / mul - add)
                if number is not None:
                    return {"value": number, "unit": how}
            how = "canonical"
        number = short_number(value)
        assert number is not None
        return number if how == "bare" else {"value": number, "unit": spec["unit"]}

    ways = ["bare", "canonical", *(spec.get("units") or {})]
    return st.builds(written, canonical, st.sampled_from(ways))


def valid_patients(ref: Reference) -> st.SearchStrategy[dict[str, Any]]:
    cuts = thresholds(ref)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in ref.inputs.items():
        if spec["type"] == "boolean":
            fields[name] = st.booleans()
        elif spec["type"] == "enum":
            fields[name] = st.sampled_from(spec["values"])
        else:
            fields[name] = number_strategy(ref, name, cuts.get(name, set()))
    # Most facts absent most of the time: that is where three-valued logic matters.
    return st.fixed_dictionaries({}, optional=fields)


def agree(ref: Reference, guideline: engine.Guideline, facts: dict[str, Any]) -> None:
    expected = ref.evaluate(facts)
    result = guideline.evaluate(facts).to_dict()
    derived = result["derived"]
    for name, spec in ref.derived.items():
        got = derived.get(name)
        if got is not None and got == spec.get("undetermined_label"):
            got = None
        want = expected.derived.get(name)
        if isinstance(want, Fraction):
            assert got is not None and math.isclose(got, float(want), rel_tol=1e-12, abs_tol=0), \
                (name, got, float(want), facts)
        elif isinstance(want, list):
            assert got is not None and [float(v) for v in want] == [float(v) for v in got], (name, got, want, facts)
        else:
            assert got == want, (name, got, want, facts)
    for name, given_value in facts.items():   # converted inputs are reported in canonical units
        if (name not in ref.derived and isinstance(given_value, dict)
                and given_value["unit"] != ref.inputs[name].get("unit")):
            canonical = ref.canonical(name, given_value)
            assert math.isclose(derived[name], float(canonical), rel_tol=1e-12), (name, derived.get(name), facts)
    codes = {r["code"] for r in result["recommendations"]}
    assert codes == expected.codes, (sorted(codes ^ expected.codes), facts)


@settings(max_examples=examples(300))
@given(valid_patients(REF))
@example({"anc": {"value": 499.99999999, "unit": "/uL"}, "temperature": 39})  # issue 9: 10-digit rounding
@example({"anc": 0.49999999999, "temperature": 39})
@example({"wbc": 2.5, "neutrophils_pct": 19.99999999, "temperature": 38.3})
@example({"anc": 0.3, "temperature": {"value": 100.94, "unit": "[degF]"}, "fever_sustained_1h": False})
def test_the_bundled_guideline_agrees_with_the_reference_evaluator(bundled: engine.Guideline,
                                                                   facts: dict[str, Any]) -> None:
    agree(REF, bundled, facts)


def _kleene_patients() -> Iterator[dict[str, Any]]:
    choices: list[list[Any]] = [[None, True, False]] * 3 + [[None, 0, 4.9, 5, 10]]
    for combo in itertools.product(*choices):
        yield {n: v for n, v in zip("abcx", combo) if v is not None}


def test_the_kleene_fixture_agrees_with_the_reference_evaluator_on_every_patient() -> None:
    ref, guideline = Reference.read(KLEENE), engine.load(KLEENE)
    for facts in _kleene_patients():
        agree(ref, guideline, facts)
