"""The only module that touches durable_rules. It drives the C core directly.

Why not `durable.lang` / `durable.engine.Host`: a Host starts timer threads it never stops,
swallows exceptions raised in actions (upstream #58, #305), and its Python wrapper costs ~0.1 ms
per rule firing. Here one ruleset per compiled guideline runs one session at a time under a
lock, actions are called synchronously in this thread, and any failure voids the evaluation.
Hazards handled (see ../shared/notes/durable-rules.md), each with a test in tests/test_durable.py:
- one fixed state id, deleted after every evaluation: no patient-derived ids (32-bit hash
  collisions), no state leaking between patients;
- a rule that always fires, so delete_state never meets a session where no action ran;
- facts asserted one at a time with explicit ids (never the batch path);
- floats written without exponents (durable_rules rejects `1e-05`);
- results of assert checked: an already-observed fact is an error, never silently ignored.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import durable_rules_engine as _core

from engine.compile.limits import MAX_RULES
from engine.errors import RuleEngineError

STATE_ID = "0"
__all__ = ["MAX_RULES", "Ruleset", "creation_error"]

_names = itertools.count()

Handler = Callable[[str, "Matched", Callable[[dict[str, Any]], object]], None]


def _safe_float(value: Any) -> bool:
    return not isinstance(value, float) or (math.isfinite(value) and "e" not in repr(value))


def _encode(value: Any) -> str:
    """JSON as durable_rules parses it: no exponent notation (`1e-05`), no NaN."""
    if isinstance(value, dict) and all(_safe_float(v) and not isinstance(v, (dict, list, tuple))
                                       for v in value.values()):
        return json.dumps(value, ensure_ascii=False)  # the hot path: a flat fact
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RuleEngineError(f"durable_rules cannot take the number {value!r}")
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise RuleEngineError(f"cannot pass {type(value).__name__} to durable_rules")


class _Matched:
    """The facts a firing matched, decoded from durable_rules' JSON on first use."""

    __slots__ = ("_message", "_facts")

    def __init__(self, message: str):
        self._message = message
        self._facts: dict[str, dict[str, Any]] | None = None

    def __getitem__(self, pattern: str) -> dict[str, Any]:
        if self._facts is None:
            (_, self._facts), = json.loads(self._message).items()
        return self._facts[pattern]


Matched = _Matched


def creation_error(definition: dict[str, Any]) -> str | None:
    """durable_rules' error code (as text) when it cannot build `definition`, else None.

    Call only with a definition within engine/compile/limits.py's static limits: beyond them
    durable_rules hangs instead of failing.
    """
    try:
        handle = _core.create_ruleset(f"trial-{next(_names)}", _encode(definition))
    except Exception as exc:  # the core raises a bare Exception with the code in its text
        return str(exc).rsplit(" ", 1)[-1]
    _core.delete_ruleset(handle)
    return None


def _void(exc: Exception) -> RuleEngineError:
    """The error that voids an evaluation, in words where durable_rules gives only a code."""
    if str(exc).endswith("error code: 303"):
        # events.c MAX_STACK_SIZE: more than 64 matches pending for one asserted fact. `validate`
        # does not predict this yet (README, reliability section).
        return RuleEngineError("evaluation failed: durable_rules' match stack (64 entries) overflowed; too "
                               "many compiled tests on one fact passed at once for this patient (error 303)")
    return RuleEngineError(f"evaluation failed inside durable_rules: {type(exc).__name__}: {exc}")


class Ruleset:
    """A compiled ruleset in durable_rules' C core, evaluated one session at a time."""

    def __init__(self, definition: dict[str, Any]):
        if len(definition) > MAX_RULES:
            raise RuleEngineError(f"the guideline compiles to {len(definition)} durable_rules rules; more than "
                                  f"{MAX_RULES} would hang durable_rules")
        # Ruleset names live in durable_rules' global registry: make each one unique.
        self.name = f"guideline-{next(_names)}"
        self._definition = _encode(definition)
        self._handle = _core.create_ruleset(self.name, self._definition)
        self._lock = threading.Lock()

    def _assert(self, fact: dict[str, Any]) -> int:
        fact = {"sid": STATE_ID, **fact}
        code, state = _core.assert_fact(self._handle, _encode(fact))
        if code == 2:
            raise RuleEngineError(f"durable_rules saw fact {fact.get('id')!r} twice in one evaluation")
        # code 1: no rule consumes the fact (a derived fact nothing reads): nothing to do.
        return int(state)

    def run(self, patient: dict[str, Any], handler: Handler) -> int:
        """Assert the patient fact, then run every action to quiescence; returns the firing count."""
        with self._lock:
            try:
                state = self._assert({"id": "$input", **patient})
            except RuleEngineError:
                raise
            except Exception as exc:
                # The patient fact itself was refused (error 303: too many matches at once). No
                # action ran, so delete_state would segfault (upstream #381): drop the whole C
                # ruleset instead and build it again, so nothing of this patient can remain.
                self._rebuild()
                raise _void(exc) from exc
            try:
                result = _core.start_action_for_state(self._handle, state)
                message = result[1] if result else None
                firings = 0
                while message:
                    # The message is {"<rule>": {matched facts}}; most actions need only the
                    # rule's name, so the facts are decoded on demand (JSON decoding is the
                    # largest cost per firing).
                    rule_name = message[2:message.index('"', 2)]
                    firings += 1
                    handler(rule_name, _Matched(message), self._assert)
                    message = _core.complete_and_start_action(self._handle, state)
                return firings
            except RuleEngineError:
                raise
            except Exception as exc:  # an action or the core failed: the evaluation is void
                raise _void(exc) from exc
            finally:
                _core.delete_state(self._handle, STATE_ID)  # the start rule fired: safe to delete

    def _rebuild(self) -> None:
        _core.delete_ruleset(self._handle)
        self.name = f"guideline-{next(_names)}"
        self._handle = _core.create_ruleset(self.name, self._definition)

    def close(self) -> None:
        """Free the C ruleset (the Guideline calls this when it is garbage-collected)."""
        if self._handle is not None:
            _core.delete_ruleset(self._handle)
            self._handle = None
