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
    # What a derived value means for the patient, where the content says (fn_risk low: 6 % …).
    meanings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.recommendations]

    def to_dict(self) -> dict[str, Any]:
        return {
            "guideline": dict(self.guideline),
            "derived": dict(self.derived),
            "recommendations": [r.to_dict() for r in self.recommendations],
            "missing": [m.to_dict() for m in self.missing],
            "explanations": {name: list(lines) for name, lines in self.explanations.items()},
            "meanings": {name: dict(m) for name, m in self.meanings.items()},
            # Only when there is one, so every other result's JSON stays as it was.
            **({"notes": list(self.notes)} if self.notes else {}),
        }
