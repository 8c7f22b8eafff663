"""A second compiled program beside a guideline's own (the why-not one, the one without missing
facts) and its durable_rules ruleset, built on first use and only once.

Lazy so that loading a guideline and its normal evaluations pay nothing for it; built under a lock
so two threads asking at once build it once (the Ruleset itself runs one session at a time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.compile.encoding import Program
from engine.run.actions import constant_facts
from engine.run.durable import Ruleset


class LazyRuleset:
    """`compile()`'s program and its ruleset, made on the first `get()`."""

    def __init__(self, compile: Callable[[], Program]):
        self._compile = compile
        self._built: tuple[Program, Ruleset] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[Program, Ruleset]:
        built = self._built
        if built is None:
            with self._lock:
                if self._built is None:
                    program = self._compile()
                    self._built = (program, Ruleset(program.definition, constant_facts(program)))
                built = self._built
        return built

    @property
    def built(self) -> bool:
        return self._built is not None

    def close(self) -> None:
        if self._built is not None:
            self._built[1].close()
