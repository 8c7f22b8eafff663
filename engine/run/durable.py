"""The only module that touches durable_rules. It drives the C core directly.

Why not `durable.lang` / `durable.engine.Host`: a Host starts timer threads it never stops,
swallows exceptions raised in actions (upstream #58, #305), and its Python wrapper costs ~0.1 ms
per rule firing. Here one ruleset per compiled guideline runs one session at a time under a
lock, actions are called synchronously in this thread, and any failure voids the evaluation.
Hazards handled (see ../shared/notes/durable-rules.md), each with a test in tests/test_durable.py:
- one fixed state id: no patient-derived ids (32-bit hash collisions);
- one session reused for every patient: after an evaluation every fact it stored (the patient
  fact and each derived fact, by explicit id) is retracted, which costs about half of deleting
  the session and creating the next one (~120 µs). Nothing may leak into the next patient, so any
  doubt falls back to a fresh session (delete_state): an error anywhere in the evaluation, a
  retraction that fails or reports an unexpected code, or facts still stored afterwards;
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
__all__ = ["MAX_RULES", "Encoded", "Ruleset", "creation_error", "encode_fact"]

_names = itertools.count()

Encoded = tuple[str, str]  # (fact id, the fact's JSON with the state id): a fact encoded once
Emit = Callable[[dict[str, Any] | Encoded], object]  # assert a derived fact: as a dict, or encoded once
Handler = Callable[[str, "Matched", Emit], None]


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps(**kw) builds one per call
_PLAIN = (str, int, bool, type(None))


def _flat(value: dict[str, Any]) -> bool:
    """Every value a JSON scalar json writes as durable_rules reads it (no exponent, no NaN)."""
    for v in value.values():
        if type(v) is float:
            if not math.isfinite(v) or "e" in repr(v):
                return False
        elif not isinstance(v, _PLAIN):
            return False
    return True


def _encode(value: Any) -> str:
    """JSON as durable_rules parses it: no exponent notation (`1e-05`), no NaN."""
    if type(value) is dict and _flat(value):
        return _ENCODER.encode(value)  # the hot path: a flat fact
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return _ENCODER.encode(value)
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


def encode_fact(fact: dict[str, Any]) -> Encoded:
    """A fact (with its explicit `id`) as asserted in the session: encode constant facts once."""
    return str(fact["id"]), _encode({"sid": STATE_ID, **fact})


# What a firing matched, as durable_rules' JSON message ({"<rule>": {pattern: fact}}). The actions
# read the values from the patient and the facts they derived instead (engine/run/actions.py), so
# nothing decodes it on the way: decoding was the largest cost per firing.
Matched = str


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

    def __init__(self, definition: dict[str, Any], constants: dict[str, Encoded] | None = None):
        if len(definition) > MAX_RULES:
            raise RuleEngineError(f"the guideline compiles to {len(definition)} durable_rules rules; more than "
                                  f"{MAX_RULES} would hang durable_rules")
        # Ruleset names live in durable_rules' global registry: make each one unique.
        self.name = f"guideline-{next(_names)}"
        self._definition = _encode(definition)
        self._handle = _core.create_ruleset(self.name, self._definition)
        self._lock = threading.Lock()
        # The facts some rules assert whatever they matched, encoded once (engine/run/actions.py).
        self.constants: dict[str, Encoded] = dict(constants or {})
        self.reuse = True       # False: delete the session after every evaluation (as before reuse)
        self._retractions: dict[str, str] = {}  # fact id -> its retraction, encoded once
        self.fresh_sessions = 0  # how many times a session was deleted (tests and benchmarks read it)

    def _assert(self, fact: dict[str, Any] | Encoded, stored: list[str]) -> int:
        fact_id, text = fact if type(fact) is tuple else encode_fact(fact)  # type: ignore[misc,arg-type]
        code, state = _core.assert_fact(self._handle, text)
        if code == 2:
            raise RuleEngineError(f"durable_rules saw fact {fact_id!r} twice in one evaluation")
        if code == 0:
            stored.append(fact_id)  # to retract after the evaluation
        # code 1: no rule consumes the fact (a derived fact nothing reads): nothing is stored.
        return int(state)

    def run(self, patient: dict[str, Any], handler: Handler) -> int:
        """Assert the patient fact, then run every action to quiescence; returns the firing count."""
        with self._lock:
            stored: list[str] = []
            try:
                state = self._assert({"id": "$input", **patient}, stored)
            except Exception as exc:
                # The patient fact itself was refused (error 303: too many matches at once). No
                # action ran, so delete_state would segfault (upstream #381): drop the whole C
                # ruleset instead and build it again, so nothing of this patient can remain.
                self._rebuild()
                raise exc if isinstance(exc, RuleEngineError) else _void(exc) from exc
            clean = False
            try:
                result = _core.start_action_for_state(self._handle, state)
                message = result[1] if result else None
                firings = 0

                def emit(fact: dict[str, Any] | Encoded) -> int:
                    return self._assert(fact, stored)

                handle, complete = self._handle, _core.complete_and_start_action
                while message:
                    firings += 1
                    handler(message[2:message.index('"', 2)], message, emit)  # {"<rule name>": ...}
                    message = complete(handle, state)
                clean = True
                return firings
            except RuleEngineError:
                raise
            except Exception as exc:  # an action or the core failed: the evaluation is void
                raise _void(exc) from exc
            finally:
                if not (clean and self.reuse and self._retract(stored, state)):
                    # The start rule fired, so delete_state is safe; the next patient gets a new session.
                    _core.delete_state(self._handle, STATE_ID)
                    self.fresh_sessions += 1

    def _retract(self, stored: list[str], state: int) -> bool:
        """Retract every fact this evaluation stored; True only when the session is empty again."""
        try:
            retractions = self._retractions
            for fact_id in stored:
                text = retractions.get(fact_id)
                if text is None:
                    text = retractions[fact_id] = _ENCODER.encode({"sid": STATE_ID, "id": fact_id})
                code, _ = _core.retract_fact(self._handle, text)
                if code != 0:
                    return False
            # Pending work or a leftover fact would reach the next patient: neither may remain.
            return (_core.start_action_for_state(self._handle, state) is None
                    and _core.get_facts(self._handle, STATE_ID) == "[]")
        except Exception:  # anything unexpected: the caller deletes the session
            return False

    def _rebuild(self) -> None:
        _core.delete_ruleset(self._handle)
        self.name = f"guideline-{next(_names)}"
        self._handle = _core.create_ruleset(self.name, self._definition)

    def close(self) -> None:
        """Free the C ruleset (the Guideline calls this when it is garbage-collected)."""
        if self._handle is not None:
            _core.delete_ruleset(self._handle)
            self._handle = None
