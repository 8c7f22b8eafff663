"""What each firing of the compiled ruleset means for one patient: derived facts, recommendations, missing facts.

Python here only moves data: it turns matched facts into derived-fact assertions and records
which rules fired and why. Matching and chaining are durable_rules'.

The values a firing matched are read from the patient and from the derived facts already
resolved (each derived fact is asserted exactly once, from its Resolution), never decoded from
durable_rules' message: the same values by construction, at a fraction of the cost. Facts a rule
asserts whatever it matched are encoded once per ruleset (`constant_facts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from engine.compile import encoding as enc
from engine.compile.encoding import Action, ActionKind, Pattern, Program
from engine.compile.kleene import States, U
from engine.errors import RuleEngineError
from engine.model.content import Atom, Content, Formula, Operand
from engine.model.units import exact, to_float
from engine.run.durable import Emit, Encoded, Matched, encode_fact
from engine.run.explain import NO_RULE_HOLDS, describe, show

_UNDETERMINED = frozenset(U)
_CONSTANT_VALUE = (ActionKind.DERIVE, ActionKind.ITEM)


def _constant_fields(action: Action) -> dict[str, Any] | None:
    """The fields of the derived fact `action` asserts when they do not depend on what it matched."""
    kind = action.kind
    if kind in (ActionKind.DERIVE_UNDETERMINED, ActionKind.ITEM_UNDETERMINED):
        return enc.undetermined(action.bounds)
    if kind in (ActionKind.DERIVE_NOT_APPLICABLE, ActionKind.SCORE_NOT_APPLICABLE):
        return enc.not_applicable()
    if kind is ActionKind.SCORE_UNDETERMINED:
        return enc.undetermined()
    if kind in _CONSTANT_VALUE and not isinstance(action.value, (Operand, Formula)):
        return enc.known(action.value)
    return None


def constant_facts(program: Program) -> dict[str, Encoded]:
    """Rule name -> its derived fact, encoded once, for every rule whose fact is constant."""
    out = {}
    for name, action in program.actions.items():
        fields = _constant_fields(action)
        if fields is not None:
            out[name] = encode_fact({"id": enc.fact_id(action.target), enc.TYPE: action.target, **fields})
    return out


@dataclass(slots=True)
class Resolution:
    """How one derived fact (or score item) was resolved in this evaluation."""

    state: str                      # value | unknown | na
    value: Any = None
    lo: float | None = None
    hi: float | None = None
    reasons: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # (rule, text, deps)


@dataclass(frozen=True)
class Part:
    """One literal of a matched branch: the atom, the truth states it accepted, the value seen, in words."""

    atom: Atom
    states: States
    actual: Any
    text: str


@dataclass
class _Firing:
    rule: str
    text: str
    deps: tuple[str, ...]


class Evaluation:
    """Collects what the actions of one durable_rules session report."""

    def __init__(self, content: Content, program: Program, patient: dict[str, Any],
                 constants: Mapping[str, Encoded] | None = None, *, explain: bool = True, missing: bool = True):
        self.content = content
        self.patient = patient
        self.program = program
        # A cohort row (engine/run/row.py) needs neither texts (`explain`) nor, when not asked
        # for, the missing facts; the rest (codes, derived facts, applicability) is the same.
        self.explain = explain
        self.record_missing = missing
        self._constants: Mapping[str, Encoded] = constants or {}
        self._rule = ""  # the durable_rules rule firing now
        self.resolved: dict[str, Resolution] = {}
        self.recs: dict[str, list[_Firing]] = {}
        # target -> the undetermined firings for it (their precomputed waits), and the score items
        # a score total left undetermined: gathered per firing, unioned once (`missing_inputs`).
        self._waiting: dict[str, list[Action]] = {}
        self._items_waiting: dict[str, set[str]] = {}
        self._missing: tuple[dict[str, set[str]], dict[str, set[str]]] | None = None
        self.rules_fired: set[str] = set()
        # The population's outcome (contract section 7) and the literals that decided it, with the
        # values matched: (atom, states, actual); worded by engine/run/applicability.py.
        self.population_status: str | None = None
        self.population_found: list[tuple[Atom, States, Any]] = []
        # Why-not only (engine/run/why_not.py): per rule, the parts of its condition the engine
        # matched as known false (RECOMMEND_FALSE) or, when `explain_undecided`, as undetermined.
        self.false_parts: dict[str, list[Part]] = {}
        self.undecided: dict[str, list[Part]] = {}
        self.explain_undecided = False
        self._emit: Emit = lambda fact: None
        self._dispatch, self._read_by_rules = _dispatch(program), _read_facts(program)

    # --- reading matched facts ---------------------------------------------------------
    def unit(self, name: str) -> str | None:
        spec = self.content.derived.get(name) or self.content.facts.get(name)
        return spec.unit if spec else None

    def _actual(self, pattern: Pattern, name: str) -> Any:
        """The value a literal of `pattern` matched: the input's, or the derived fact's value, its
        bounds while undetermined ([lo, hi]), or None (undetermined without bounds, not applicable)."""
        if pattern.fact is None:
            return self.patient.get(name)
        res = self.resolved[pattern.fact]
        if res.state == "value":
            return res.value
        if res.state == "unknown" and res.lo is not None:
            return [res.lo, res.hi]
        return None

    def _explain(self, action: Action, matched: Matched) -> tuple[str, tuple[str, ...]]:
        if not self.explain:
            return "always", action.deps
        parts = []
        for p in action.patterns:
            for atom, states in p.literals:
                part = describe(atom, states, self._actual(p, atom.fact), self.unit(atom.fact))
                if part not in parts:
                    parts.append(part)
        return "; ".join(parts) or "always", action.deps

    def _parts(self, action: Action, matched: Matched, into: dict[str, list[Part]]) -> None:
        """Each literal of the matched patterns in words, with the value matched, once per rule."""
        parts = into.setdefault(action.target, [])
        for p in action.patterns:
            for atom, states in p.literals:
                actual = self._actual(p, atom.fact)
                part = Part(atom, states, actual, describe(atom, states, actual, self.unit(atom.fact)))
                if part.text not in (known.text for known in parts):
                    parts.append(part)

    def _record_missing(self, target: str, action: Action) -> None:
        """Which facts left `target` undetermined: the branch's own (precomputed by the compiler,
        engine/compile/encoding.py Action.waits_*), gathered here and unioned once, after the run."""
        if self.record_missing:
            waiting = self._waiting.get(target)
            if waiting is None:
                self._waiting[target] = [action]
            else:
                waiting.append(action)

    def _gather_missing(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        if self._missing is None:
            inputs: dict[str, set[str]] = {}
            via: dict[str, set[str]] = {name: set(items) for name, items in self._items_waiting.items()}
            facts, patient = self.content.facts, self.patient
            for target, actions in self._waiting.items():
                found = inputs[target] = set().union(*(a.waits_inputs for a in actions))
                if target in facts and target not in patient:
                    found.add(target)  # a derived fact that is also an input (anc) is decided by giving it
                via.setdefault(target, set()).update(*(a.waits_via for a in actions))
            self._missing = inputs, via
        return self._missing

    @property
    def missing_inputs(self) -> dict[str, set[str]]:
        """target -> the input facts whose absence left it undetermined (read after the run)."""
        return self._gather_missing()[0]

    @property
    def missing_via(self) -> dict[str, set[str]]:
        """target -> the undetermined derived facts (and score items) it waits for (after the run)."""
        return self._gather_missing()[1]

    # --- values --------------------------------------------------------------------------
    def _read(self, op: Operand, action: Action, matched: Matched) -> Any:
        """An operand's value: from its derived fact if the rule matched one, else the input."""
        for p in action.patterns:
            if p.fact == op.fact and self.resolved[op.fact].state == "value":
                return self.resolved[op.fact].value
        for p in action.patterns:
            if p.fact is None and op.fact in self.patient:
                return self.patient[op.fact]
        if op.default is not None:
            return op.default
        raise RuleEngineError(f"rule for '{action.target}' needs '{op.fact}', which was not matched")

    def _compute(self, value: Any, action: Action, matched: Matched) -> Any:
        if isinstance(value, Operand):
            return self._read(value, action, matched)
        if isinstance(value, Formula):
            return to_float(self._formula(value, action, matched))
        return value

    def _formula(self, f: Formula, action: Action, matched: Matched) -> Fraction:
        args = [self._formula(a, action, matched) if isinstance(a, Formula) else
                exact(self._read(a, action, matched)) if isinstance(a, Operand) else exact(a) for a in f.args]
        left, right = args
        if f.op == "divide" and right == 0:
            raise RuleEngineError(f"rule '{action.target}' divides by zero")
        return f.combine(left, right)

    # --- resolving derived facts --------------------------------------------------------
    def _resolve(self, name: str, res: Resolution, fact: dict[str, Any] | None = None) -> None:
        """Record `name`'s outcome and assert it; `fact` None: the firing rule's constant fact."""
        prior = self.resolved.get(name)
        if prior is None:
            self.resolved[name] = res
            if name not in self._read_by_rules:
                return  # no compiled rule reads it: durable_rules would not even store it
            constant = self._constants.get(self._rule)
            if constant is None:
                fields = fact if fact is not None else _constant_fields(self.program.actions[self._rule])
                assert fields is not None, f"rule {self._rule} has no constant fact"
                self._emit({"id": enc.fact_id(name), enc.TYPE: name, **fields})
            else:
                self._emit(constant)
            return
        if prior.state == res.state == "value" and prior.value == res.value:
            prior.reasons += [r for r in res.reasons if r not in prior.reasons]
            return
        if prior.state == res.state != "value":
            return  # the same undetermined / not-applicable outcome reached by another branch
        raise RuleEngineError(f"'{name}' is derived twice with different outcomes ({prior.state} "
                              f"{show(prior.value)} and {res.state} {show(res.value)}): the rules overlap")

    def handle(self, rule_name: str, matched: Matched, emit: Emit) -> None:
        """Called by the durable_rules adapter for every firing, in this thread."""
        self._emit = emit
        self._rule = rule_name
        handler, action = self._dispatch[rule_name]
        handler(self, action, matched)

    def _start(self, action: Action, matched: Matched) -> None:
        return  # the always-firing rule exists only so delete_state is safe (engine/run/durable.py)

    def _recommend(self, action: Action, matched: Matched) -> None:
        assert action.rule is not None
        text, deps = self._explain(action, matched)
        firing = _Firing(action.rule.id, text, deps)
        firings = self.recs.setdefault(action.rule.recommend or "", [])
        if all((f.rule, f.text) != (firing.rule, firing.text) for f in firings):
            firings.append(firing)  # `$or` branches fire once each (durable_rules hazard)
        self.rules_fired.add(action.rule.id)

    def _recommend_undetermined(self, action: Action, matched: Matched) -> None:
        assert action.rule is not None
        self._record_missing(action.rule.recommend or "", action)
        if self.explain_undecided:  # a why-not evaluation: decoding the match costs, so only then
            self._parts(action, matched, self.undecided)

    def _recommend_false(self, action: Action, matched: Matched) -> None:
        self._parts(action, matched, self.false_parts)  # records only: nothing is derived or recommended

    def _population(self, action: Action, matched: Matched) -> None:
        status = enc.POPULATION_STATUS[action.kind]
        if self.population_status not in (None, status):  # Kleene branches of one mode exclude the others
            raise RuleEngineError(f"the population is both {self.population_status} and {status}")
        self.population_status = status
        for p in action.patterns:  # always: a cohort row says why too (one firing, a literal or two)
            for atom, states in p.literals:
                found = (atom, states, self._actual(p, atom.fact))
                if found not in self.population_found:  # `$or` branches fire once each
                    self.population_found.append(found)
        if action.kind is ActionKind.POPULATION_UNDETERMINED:
            self._record_missing(action.target, action)

    def _derive(self, action: Action, matched: Matched) -> None:
        text, deps = self._explain(action, matched)
        value = self._compute(action.value, action, matched)
        rule_id = action.rule.id if action.rule else NO_RULE_HOLDS
        if action.rule:
            self.rules_fired.add(action.rule.id)
        self._resolve(action.target, Resolution("value", value, reasons=[(rule_id, text, deps)]),
                      enc.known(value) if isinstance(action.value, (Operand, Formula)) else None)

    def _derive_undetermined(self, action: Action, matched: Matched) -> None:
        self._record_missing(action.target, action)
        self._resolve(action.target, Resolution("unknown", None, *(action.bounds or (None, None))))

    def _not_applicable(self, action: Action, matched: Matched) -> None:
        self._resolve(action.target, Resolution("na"))

    def _score_undetermined(self, action: Action, matched: Matched) -> None:
        self._record_missing(action.target, action)
        self._resolve(action.target, Resolution("unknown"))

    def _score(self, action: Action, matched: Matched) -> None:
        assert action.score is not None
        lo = hi = Fraction(0)
        parts, via = [], set()
        for _, item_name in action.item_patterns:
            item = self.resolved[item_name]  # points are numbers: a known item's bounds are its value
            low, high = (item.value, item.value) if item.state == "value" else (item.lo, item.hi)
            assert low is not None and high is not None, f"score item '{item_name}' has no bounds"
            lo, hi = lo + exact(low), hi + exact(high)
            title = self.program.item_facts[item_name][1].title
            if item.state == "unknown":
                via.add(item_name)
                if self.explain:
                    parts.append(f"{title} {show(low)}–{show(high)} (not decided)")
            elif self.explain:
                parts.append(f"{title} {show(item.value)}")
        lo_f, hi_f = _number(lo), _number(hi)
        rule_id = action.score.rule_id
        self.rules_fired.add(rule_id)
        text = f"{action.score.title}: " + ", ".join(parts) if self.explain else ""
        if via and self.record_missing:
            self._items_waiting.setdefault(action.target, set()).update(via)
        deps = tuple(name for _, name in action.item_patterns)
        if lo == hi:
            res = Resolution("value", lo_f, lo_f, hi_f, [(rule_id, text, deps)])
            self._resolve(action.target, res, enc.known(lo_f))
        else:
            res = Resolution("unknown", None, lo_f, hi_f, [(rule_id, text, deps)])
            self._resolve(action.target, res, enc.undetermined((lo_f, hi_f)))

    # One handler per action kind: a kind the compiler adds without a handler fails at import.
    _HANDLERS: dict[ActionKind, Callable[[Evaluation, Action, Matched], None]] = {
        ActionKind.START: _start,
        ActionKind.RECOMMEND: _recommend,
        ActionKind.RECOMMEND_UNDETERMINED: _recommend_undetermined,
        ActionKind.RECOMMEND_FALSE: _recommend_false,
        ActionKind.DERIVE: _derive,
        ActionKind.ITEM: _derive,
        ActionKind.DERIVE_UNDETERMINED: _derive_undetermined,
        ActionKind.ITEM_UNDETERMINED: _derive_undetermined,
        ActionKind.DERIVE_NOT_APPLICABLE: _not_applicable,
        ActionKind.SCORE_NOT_APPLICABLE: _not_applicable,
        ActionKind.SCORE_UNDETERMINED: _score_undetermined,
        ActionKind.SCORE: _score,
        ActionKind.POPULATION: _population,
        ActionKind.POPULATION_UNDETERMINED: _population,
        ActionKind.POPULATION_NOT_MET: _population,
    }
    assert set(_HANDLERS) == set(ActionKind), "every action kind needs a handler"


_Dispatch = dict[str, tuple[Callable[[Evaluation, Action, Matched], None], Action]]


def _dispatch(program: Program) -> _Dispatch:
    """Rule name -> (its handler, its action), built once per program: every firing looks up one
    name instead of the action, then its kind (an Enum, hashed in Python) in the handler table."""
    table: _Dispatch | None = program.cache.get("dispatch")
    if table is None:
        handlers = Evaluation._HANDLERS
        table = program.cache["dispatch"] = {name: (handlers[a.kind], a) for name, a in program.actions.items()}
    return table


def _read_facts(program: Program) -> frozenset[str]:
    """The derived facts (and score items) some compiled rule matches: only these are asserted."""
    read: frozenset[str] | None = program.cache.get("read")
    if read is None:
        read = program.cache["read"] = frozenset(
            [p.fact for a in program.actions.values() for p in a.patterns if p.fact is not None]
            + [fact for a in program.actions.values() for _, fact in a.item_patterns])
    return read


def _number(value: Fraction) -> int | float:
    """Whole points stay integers (a MASCC score of 23, not 23.0)."""
    return int(value) if value.denominator == 1 else to_float(value)
