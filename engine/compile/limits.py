"""durable_rules' capacity, checked on the compiled program so `validate` finds it, located at a rule.

Measured on durable_rules 2.0.28 (one core; experiments in the report of issue 9):
- more than 512 distinct tests below one node of its network (distinct thresholds or values on
  one fact, `in:` lists of 513 values, 513 facts tested after one type test) make
  `create_ruleset` loop for ever (a full hash set probed without end): 500 distinct thresholds
  load in 0.05 s, 520 hang. That cannot be interrupted (the C core holds the GIL), so it is
  refused here, statically, before durable_rules sees the ruleset: at most MAX_DISTINCT_TESTS
  distinct tests in the whole ruleset bounds the tests below any one node;
- more than 256 rules ending at the same node (rules of one shape) fail with error 108, more
  than 128 absence tests below one node with 107, more than 32 tests in one pattern with 113:
  those fail cleanly, so engine/run/durable.py's `creation_error` finds them by building the
  ruleset once during validation, and the first failing rule is located by bisection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from engine.compile.encoding import APPLICABILITY, Action, Program
from engine.model.content import Content, Where

MAX_RULES = 1000           # durable_rules rules (compiled, not YAML rules) in one ruleset
MAX_DISTINCT_TESTS = 480   # distinct (operator, field, value) tests in one ruleset; hangs above 512

_COMBINATORS = ("$and", "$or", "all", "any")

# durable_rules' error codes (src/rules/rules.h) that a guideline can provoke, in words.
CREATION_ERRORS = {
    "106": "too many different facts tested after one test",
    "107": "more than 128 absence tests after one test",
    "108": "more than 256 compiled rules test the same facts in the same way",
    "113": "more than 32 tests on one fact pattern",
}


def tests(clause: Any) -> Iterator[tuple[str, str, str]]:
    """The (operator, field, value) tests of one durable_rules rule or pattern, nested or not."""
    if isinstance(clause, list):
        for item in clause:
            yield from tests(item)
    elif isinstance(clause, dict):
        for key, value in clause.items():
            if key in _COMBINATORS:
                yield from tests(value)
            elif isinstance(value, dict) and key.startswith("$"):
                for field_, operand in value.items():
                    yield key, field_, json.dumps(operand, sort_keys=True)
            elif isinstance(value, dict):  # a pattern name: its test follows
                yield from tests(value)
            else:
                yield "$eq", key, json.dumps(value, sort_keys=True)


def where_of(content: Content, action: Action) -> tuple[Where, str]:
    """(where the YAML behind one compiled rule is, what to call it)."""
    found: tuple[Where | None, str] = (None, "the guideline")
    if action.rule is not None:
        found = action.rule.where, f"rule '{action.rule.id}'"
    elif action.score is not None:
        found = action.score.where, f"score '{action.score.id}'"
    elif action.target == APPLICABILITY and content.population is not None:
        found = content.population.where, "the population"
    else:
        found = next(((r.where, f"the rules deriving '{action.target}'") for r in content.rules
                      if r.derive == action.target), found)
    return found[0] or content.where["guideline"], found[1]


def static_problem(content: Content, program: Program) -> tuple[Where, str] | None:
    """The first compiled rule past a limit that durable_rules cannot report itself (it hangs)."""
    seen: set[tuple[str, str, str]] = set()
    for count, (name, clause) in enumerate(program.definition.items(), start=1):
        action = program.actions[name]
        if count > MAX_RULES:
            where, owner = where_of(content, action)
            return where, (f"{owner}: the guideline compiles to more than {MAX_RULES} durable_rules rules "
                           f"({len(program.definition)}); durable_rules fails or hangs near 1,300")
        seen.update(tests(clause))
        if len(seen) > MAX_DISTINCT_TESTS:
            where, owner = where_of(content, action)
            return where, (f"{owner}: the guideline compiles to more than {MAX_DISTINCT_TESTS} distinct tests "
                           "(thresholds, values, `in:` items); durable_rules hangs above 512")
    return None


def prefix(program: Program, n: int) -> dict[str, Any]:
    """The ruleset of the first `n` compiled rules (the always-firing start rule is the first)."""
    return dict(list(program.definition.items())[:n])
