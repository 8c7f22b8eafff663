"""The result of one evaluation: immutable, and `to_dict()` is the contract's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecommendationResult:
    code: str
    kind: str
    urgency: str
    title: str
    text: str
    rule: str
    rules: tuple[str, ...]
    citations: tuple[str, ...]
    because: tuple[str, ...]
    references: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "kind": self.kind, "urgency": self.urgency, "title": self.title,
                "text": self.text, "rule": self.rule, "rules": list(self.rules),
                "citations": list(self.citations), "because": list(self.because),
                "references": list(self.references)}


@dataclass(frozen=True)
class Decides:
    """What knowing one missing fact could still decide (contract section 8)."""

    urgency: str | None                        # the most urgent recommendation it could decide
    recommendations: int                       # how many recommendations it could decide
    by_urgency: tuple[tuple[str, int], ...] = ()  # (urgency, count), most urgent first
    derived: tuple[str, ...] = ()              # derived facts it could decide, in facts.yaml order

    def to_dict(self) -> dict[str, Any]:
        return {"urgency": self.urgency, "recommendations": self.recommendations,
                "by_urgency": dict(self.by_urgency), "derived": list(self.derived)}


@dataclass(frozen=True)
class MissingFact:
    fact: str
    needed_for: tuple[str, ...]
    decides: Decides = field(default_factory=lambda: Decides(None, 0))

    def to_dict(self) -> dict[str, Any]:
        return {"fact": self.fact, "needed_for": list(self.needed_for), "decides": self.decides.to_dict()}


@dataclass(frozen=True)
class Applicability:
    """Whether the guideline applies to this patient (contract section 7): `status` is applies,
    does-not-apply or undetermined; `because` the population's parts as decided, in words."""

    status: str = "applies"
    population: str = "everyone"  # a guideline without `population` applies to everyone, because []
    because: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "population": self.population, "because": list(self.because)}


@dataclass(frozen=True)
class WhatIfScenario:
    """The patient with one missing fact given this value: the codes it would add and remove."""

    value: Any
    adds: tuple[str, ...]
    removes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "adds": list(self.adds), "removes": list(self.removes)}


@dataclass(frozen=True)
class WhatIfEntry:
    """One missing fact's decision-relevant values; `truncated` when the evaluation budget ran out."""

    fact: str
    scenarios: tuple[WhatIfScenario, ...]
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"fact": self.fact, "scenarios": [s.to_dict() for s in self.scenarios],
                **({"truncated": True} if self.truncated else {})}


@dataclass(frozen=True)
class WhyNotRule:
    """One rule recommending the code: its outcome for this patient, in words."""

    rule: str
    status: str  # fired | not-fired | undetermined
    because: tuple[str, ...]
    waits_for: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "status": self.status, "because": list(self.because),
                "waits_for": list(self.waits_for)}


@dataclass(frozen=True)
class WhyNotEntry:
    """Why a catalogue code did or did not fire: fired if one of its rules fired, else undetermined
    if one was undecided, else not-fired; `rules` gives each rule's own outcome."""

    code: str
    status: str
    because: tuple[str, ...]
    rules: tuple[WhyNotRule, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "status": self.status, "because": list(self.because),
                "rules": [r.to_dict() for r in self.rules]}


@dataclass(frozen=True)
class Result:
    """What the guideline recommends for one patient, why, and what data it lacked."""

    guideline: dict[str, str]
    derived: dict[str, Any]
    recommendations: tuple[RecommendationResult, ...]
    missing: tuple[MissingFact, ...]
    rules_fired: frozenset[str] = field(default_factory=frozenset)
    explanations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # What a reader must know about the input itself (e.g. that no fact was given at all).
    notes: tuple[str, ...] = ()
    applicability: Applicability = field(default_factory=Applicability)
    # Only when asked for (contract section 8): None otherwise, and then absent from the JSON.
    what_if: tuple[WhatIfEntry, ...] | None = None
    why_not: tuple[WhyNotEntry, ...] | None = None
    # What a derived value means for the patient, where the content says (fn_risk low: 6 % …).
    meanings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.recommendations]

    def to_dict(self) -> dict[str, Any]:
        return {
            "guideline": dict(self.guideline),
            "applicability": self.applicability.to_dict(),
            "derived": dict(self.derived),
            "recommendations": [r.to_dict() for r in self.recommendations],
            "missing": [m.to_dict() for m in self.missing],
            "explanations": {name: list(lines) for name, lines in self.explanations.items()},
            "meanings": {name: dict(m) for name, m in self.meanings.items()},
            # Only when there is one, so every other result's JSON stays as it was.
            **({"notes": list(self.notes)} if self.notes else {}),
            **({"what_if": [e.to_dict() for e in self.what_if]} if self.what_if is not None else {}),
            **({"why_not": [e.to_dict() for e in self.why_not]} if self.why_not is not None else {}),
        }
