"""The durable_rules C calls of one evaluation, recorded and replayed with no Python action: what
this engine costs at the very least (assert the patient, the derived facts at the firings that
derived them, complete every action, retract every stored fact). Benchmarks only."""

from __future__ import annotations

from typing import Any

import durable_rules_engine as core

import engine
from engine.compile.encoding import INPUT, TYPE
from engine.run import durable
from engine.run.actions import Evaluation
from engine.run.input import check_facts

Script = tuple[str, list[list[tuple[str, str]]]]  # the patient fact; per firing, the facts it asserted


def record(guideline: engine.Guideline, facts: dict[str, Any]) -> Script:
    canonical, _ = check_facts(guideline.content, facts)
    ruleset = guideline._ruleset
    ev = Evaluation(guideline.content, guideline.program, canonical, ruleset.constants)
    firings: list[list[tuple[str, str]]] = []

    def handler(name: str, matched: str, emit: Any) -> None:
        asserted: list[tuple[str, str]] = []
        firings.append(asserted)

        def recording(fact: Any) -> object:
            asserted.append(fact if type(fact) is tuple else durable.encode_fact(fact))
            return emit(fact)

        ev.handle(name, matched, recording)

    ruleset.run({TYPE: INPUT, **canonical}, handler)
    return durable.encode_fact({"id": "$input", TYPE: INPUT, **canonical})[1], firings


def replay(guideline: engine.Guideline, script: Script) -> None:
    handle = guideline._ruleset._handle
    text, firings = script
    _, state = core.assert_fact(handle, text)
    stored = ["$input"]
    started = core.start_action_for_state(handle, state)
    message, i = (started[1] if started else None), 0
    while message:
        for fact_id, fact in firings[i]:
            if core.assert_fact(handle, fact)[0] == 0:
                stored.append(fact_id)
        i += 1
        message = core.complete_and_start_action(handle, state)
    for fact_id in stored:
        core.retract_fact(handle, '{"sid":"%s","id":"%s"}' % (durable.STATE_ID, fact_id))
