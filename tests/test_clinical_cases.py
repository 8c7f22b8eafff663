"""The guideline's own clinical cases (guidelines/*/cases/*.yaml), one pytest item per case."""

from __future__ import annotations

import pytest

import engine
from engine.products.cases import Case, all_rule_ids, load_cases, run_case

_GUIDELINE = engine.load()
_CASES, _PROBLEMS = load_cases(engine.BUNDLED_GUIDELINE, _GUIDELINE)


def test_case_files_are_valid() -> None:
    assert [str(p) for p in _PROBLEMS] == []


@pytest.mark.parametrize("case", _CASES, ids=[c.id for c in _CASES])
def test_clinical_case(case: Case) -> None:
    outcome = run_case(_GUIDELINE, case)
    assert outcome.passed, "\n".join(outcome.failures)


def test_every_rule_fires_in_some_case() -> None:
    fired = set().union(*(run_case(_GUIDELINE, c).rules_fired for c in _CASES))
    assert sorted(set(all_rule_ids(_GUIDELINE)) - fired) == []


def test_every_code_has_a_case_where_it_fires_and_a_near_miss() -> None:
    fires = {code for c in _CASES for code in c.expect.get("fires", []) + c.expect.get("fires_exactly", [])}
    misses = {code for c in _CASES for code in c.expect.get("does_not_fire", [])}
    misses |= {code for c in _CASES if "fires_exactly" in c.expect
               for code in set(_GUIDELINE.content.catalogue) - set(c.expect["fires_exactly"])}
    catalogue = set(_GUIDELINE.content.catalogue)
    assert sorted(catalogue - fires) == []
    assert sorted(catalogue - misses) == []
