"""The guideline as typed, immutable objects (built from schema-valid YAML)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any, Union

from engine.errors import Problem
from engine.model.source import Document, Path_


@dataclass(frozen=True)
class Where:
    """Where an element was written, to locate semantic errors."""

    doc: Document = field(compare=False, repr=False)
    path: Path_ = field(compare=False)

    def problem(self, code: str, message: str, *suffix: str | int) -> Problem:
        return self.doc.problem(self.path + tuple(suffix), code, message)


# --- conditions ---------------------------------------------------------------------------




@dataclass(frozen=True)
class Binding:
    """What the resolve stage (engine/check/resolve.py) bound a fact mention to, once, for every
    product: the fact's spec, whether it is a derived fact (its own fact in durable_rules) or
    the patient's input, and, for a threshold, its exact value in the fact's canonical unit."""

    # The spec is not compared: the same fact declared with its units in another order is the
    # same binding (the atom's fact name and `derived` already say which fact it is).
    spec: FactSpec = field(compare=False)
    derived: bool = False
    exact: Fraction | None = None
    # The threshold as the editor wrote it, when that was in another unit ("500 /uL"); shown
    # next to the canonical value, never compared (the same threshold written two ways is equal).
    written: tuple[Any, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Atom:
    """One test on one fact: `op` is lt/le/gt/ge (number), is/in (value) or known.

    As built from YAML, `value` and `unit` are as written and `binding` is None; after the
    resolve stage a threshold's `value` is in the fact's canonical `unit` and `binding` is set.
    """

    fact: str
    op: str
    value: Any
    where: Where = field(compare=False, repr=False)
    unit: str | None = None
    binding: Binding | None = None


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


@dataclass(frozen=True)
class NoneKnown:
    """True unless one of the items is known true; two-valued by design."""

    items: tuple[Condition, ...]


Condition = Union[Atom, All, Any_, Not, NoneKnown]


def atoms(cond: Condition) -> list[Atom]:
    """Every atom of a condition, in writing order."""
    if isinstance(cond, Atom):
        return [cond]
    if isinstance(cond, Not):
        return atoms(cond.item)
    return [a for item in cond.items for a in atoms(item)]


# --- values of derived facts ---------------------------------------------------------------

@dataclass(frozen=True)
class Operand:
    fact: str
    default: float | None
    where: Where = field(compare=False, repr=False)
    binding: Binding | None = None


@dataclass(frozen=True)
class Formula:
    op: str  # add | subtract | multiply | divide
    args: tuple[Union[float, Operand, Formula], ...]

    def combine(self, left: Any, right: Any) -> Any:
        """The operation on its two computed arguments: exact numbers when a patient is evaluated
        (engine/run/actions.py), z3 terms in `guideline check` (engine/products/check/encode.py).
        A zero divisor is the caller's to handle: the engine refuses it, the solver excludes it."""
        return _ARITHMETIC[self.op](left, right)


_ARITHMETIC = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul, "divide": operator.truediv}


def operands(value: Any) -> list[Operand]:
    """The fact operands a derived value reads."""
    if isinstance(value, Operand):
        return [value]
    if isinstance(value, Formula):
        return [o for arg in value.args for o in operands(arg)]
    return []


# --- the dictionary, catalogue, rules and scores ----------------------------------------------

@dataclass(frozen=True)
class Conversion:
    multiply: Fraction
    add: Fraction


@dataclass(frozen=True)
class ValueMeaning:
    """What one value of a derived fact means for the patient, in the seed's words, with its sources."""

    value: str
    text: str
    citations: tuple[int, ...]


_IDENTITY = Conversion(Fraction(1), Fraction(0))  # the canonical unit itself


@dataclass(frozen=True)
class FactSpec:
    name: str
    type: str  # number | boolean | enum | range
    derived: bool
    description: str
    unit: str | None = None
    units: tuple[tuple[str, Conversion], ...] = ()
    range: tuple[float, float] | None = None
    values: tuple[str, ...] = ()
    loinc: tuple[str, ...] = ()
    undetermined_label: str | None = None
    fhir_patient: str | None = None          # Patient element giving the fact (birthDate -> age)
    fhir_component_of: tuple[str, ...] = ()  # panels whose components coded with `loinc` give the fact
    fhir_select: str = "latest"              # latest | highest | lowest (within fhir_window_hours)
    fhir_window_hours: float | None = None
    label: str | None = None                 # the plain clinical name shown to people
    ask: str | None = None                   # how to ask for it ("Measure the temperature")
    meaning: tuple[ValueMeaning, ...] = ()   # what a value means (derived facts)
    where: Where | None = field(default=None, compare=False, repr=False)

    @property
    def display(self) -> str:
        """The fact's plain name: its `label`, else its name with spaces."""
        return self.label or self.name.replace("_", " ")

    @property
    def ask_phrase(self) -> str:
        return self.ask or f"Find out {self.display}"

    def meaning_of(self, value: object) -> ValueMeaning | None:
        return next((m for m in self.meaning if m.value == value), None)

    def conversion(self, unit: str) -> Conversion | None:
        if unit == self.unit:
            return _IDENTITY
        return self._unit_map.get(unit)

    @cached_property
    def _unit_map(self) -> dict[str, Conversion]:  # every patient's quantities look units up here
        return dict(self.units)


@dataclass(frozen=True)
class Recommendation:
    code: str
    kind: str
    urgency: str
    title: str
    text: str
    where: Where = field(compare=False, repr=False)
    # Codes that must never be recommended together with this one (symmetric; `guideline check`).
    conflicts_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expectation:
    """guideline.yaml `guidance_expected`: patients for whom the guideline should recommend
    something; `guideline check` looks for one who gets no recommendation at all."""

    description: str
    when: Condition
    note: str = ""
    where: Where | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    when: Condition
    citations: tuple[int, ...]
    rationale: str
    recommend: str | None = None
    derive: str | None = None
    value: Any = None
    where: Where | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScoreOption:
    points: float
    when: Condition


@dataclass(frozen=True)
class ScoreItem:
    id: str
    title: str
    options: tuple[ScoreOption, ...]


@dataclass(frozen=True)
class Score:
    id: str
    title: str
    fact: str
    range_fact: str | None
    applies_when: Condition
    items: tuple[ScoreItem, ...]
    citations: tuple[int, ...]
    rationale: str
    where: Where = field(compare=False, repr=False)

    @property
    def rule_id(self) -> str:
        """The id a score's computation has among the rules (coverage, rules_fired)."""
        return f"score:{self.id}"


@dataclass(frozen=True)
class Population:
    """Whom the guideline is for (guideline.yaml `population`): a patient for whom `when` is known
    false gets no recommendation; undetermined, the facts it waits for are reported missing."""

    description: str
    when: Condition
    rationale: str = ""
    citations: tuple[int, ...] = ()
    where: Where | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Reference:
    id: int
    citation: str
    note: str = ""


@dataclass(frozen=True)
class Metadata:
    id: str
    title: str
    version: str
    status: str
    effective_date: str | None
    description: str
    owners: tuple[dict[str, str], ...]
    reviewers: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Content:
    """Everything a guideline folder says; `resolved` once the resolve stage has bound it."""

    metadata: Metadata
    references: dict[int, Reference]
    facts: dict[str, FactSpec]          # input facts
    derived: dict[str, FactSpec]        # derived facts
    catalogue: dict[str, Recommendation]
    rules: tuple[Rule, ...]
    scores: tuple[Score, ...]
    traceability: tuple[dict[str, Any], ...]
    population: Population | None = None  # None: the guideline applies to everyone
    where: dict[str, Where] = field(default_factory=dict, compare=False, repr=False)
    resolved: bool = False
    guidance_expected: tuple[Expectation, ...] = ()

    def fact_read(self, name: str, deriving: str | None = None) -> FactSpec | None:
        """The fact a mention of `name` reads, in a rule deriving `deriving`: the derived fact of
        that name, except inside a rule deriving that very name, which reads the input of the same
        name (the rule computing `anc` from the differential reads whether `anc` was given).
        None when there is no such fact. The one answer to "which fact is this?" (the resolve
        stage binds every atom and operand with it)."""
        if name in self.derived and name != deriving:
            return self.derived[name]
        return self.facts.get(name)

    def units_of(self, name: str) -> FactSpec | None:
        """The spec whose units a threshold on `name` may be written in: a derived fact that is
        also an input (anc) accepts the input's units."""
        return self.facts.get(name) or self.derived.get(name)
