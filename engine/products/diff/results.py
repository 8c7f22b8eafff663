"""What `guideline diff` finds, as frozen data: changes, changed patients, the version check, the whole diff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Bump levels, weakest first. Policy (docs/auditing-diff.md): MAJOR when something others rely
# on disappears or changes meaning; MINOR for any other change of logic or behaviour; PATCH for
# wording, citations and metadata.
LEVELS = ("none", "patch", "minor", "major")
NONE, PATCH, MINOR, MAJOR = LEVELS


def rank(level: str) -> int:
    return LEVELS.index(level)


@dataclass(frozen=True)
class Change:
    """One semantic difference, and the version bump it requires on its own."""

    area: str        # guideline | population | reference | input fact | derived fact | catalogue | rule | score | traceability
    key: str         # the element's id or name
    what: str        # added | removed | changed
    field: str       # the changed field ('' for added / removed)
    summary: str     # the sentence an auditor reads
    level: str
    old: str | None = None
    new: str | None = None
    long_text: bool = False  # old / new are full texts that the summary only mentions

    @property
    def text(self) -> str:
        return f"{self.area} {self.key}: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "key": self.key, "change": self.what, "field": self.field,
                "summary": self.summary, "text": self.text, "level": self.level, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Side:
    id: str
    version: str
    digest: str
    label: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "digest": self.digest, "source": self.label}


@dataclass(frozen=True)
class DerivedChange:
    fact: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PatientChange:
    """A patient whose recommendations or derived facts differ between the versions."""

    name: str
    facts: Mapping[str, Any]
    codes_added: tuple[str, ...]
    codes_removed: tuple[str, ...]
    derived: tuple[DerivedChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"patient": self.name, "facts": dict(self.facts), "codes_added": list(self.codes_added),
                "codes_removed": list(self.codes_removed),
                "derived": [{"fact": d.fact, "old": d.old, "new": d.new} for d in self.derived]}


@dataclass(frozen=True)
class Behaviour:
    patients_compared: int
    from_cases: int
    from_boundaries: int
    skipped: int                                   # invalid input for one of the versions
    changed: tuple[PatientChange, ...]
    seconds: float
    thresholds: tuple[tuple[str, tuple[str, ...]], ...]  # fact -> boundary values probed
    unprobed: tuple[str, ...]                      # derived-only facts with thresholds (reached via cases)

    def impact(self) -> list[tuple[str, str, int]]:
        """(code or fact, 'added' / 'removed' / 'changed', number of patients), most frequent first."""
        counts: dict[tuple[str, str], int] = {}
        for p in self.changed:
            for key in [(c, "added") for c in p.codes_added] + [(c, "removed") for c in p.codes_removed] \
                    + [(d.fact, "changed") for d in p.derived]:
                counts[key] = counts.get(key, 0) + 1
        return sorted(((k, w, n) for (k, w), n in counts.items()), key=lambda t: (-t[2], t[0], t[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"patients_compared": self.patients_compared, "from_cases": self.from_cases,
                "from_boundaries": self.from_boundaries, "skipped": self.skipped,
                "seconds": round(self.seconds, 3),
                "thresholds": {fact: list(values) for fact, values in self.thresholds},
                "unprobed_derived_facts": list(self.unprobed),
                "impact": [{"item": k, "change": w, "patients": n} for k, w, n in self.impact()],
                "changed": [p.to_dict() for p in self.changed]}


@dataclass(frozen=True)
class VersionCheck:
    required: str
    actual: str
    ok: bool
    messages: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"required": self.required, "actual": self.actual, "ok": self.ok, "messages": list(self.messages)}


@dataclass(frozen=True)
class CodeImpact:
    """How many patients of a cohort gain / lose one code, with the first few of them as examples."""

    code: str
    added: int
    removed: int
    added_examples: tuple[str, ...] = ()
    removed_examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortImpact:
    """The behavioural diff over a real cohort (`guideline diff --cohort INPUT`, contract section 10)."""

    patients: int
    changed: int                    # patients whose codes or derived facts differ
    codes: tuple[CodeImpact, ...]   # most patients affected first
    invalid: int = 0                # patients invalid input for one version or both: not compared
    derived_changed: int = 0        # patients whose derived facts differ

    def to_dict(self) -> dict[str, Any]:
        return {"patients": self.patients, "changed": self.changed, "invalid": self.invalid,
                "derived_changed": self.derived_changed,
                "codes": {c.code: {"added": c.added, "removed": c.removed,
                                   "examples": {"added": list(c.added_examples), "removed": list(c.removed_examples)}}
                          for c in self.codes}}


@dataclass(frozen=True)
class Diff:
    old: Side
    new: Side
    semantic: tuple[Change, ...]
    behaviour: Behaviour
    version_check: VersionCheck
    cohort: CohortImpact | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old.to_dict(), "new": self.new.to_dict(),
                "semantic": [c.to_dict() for c in self.semantic], "behaviour": self.behaviour.to_dict(),
                "version_check": self.version_check.to_dict(),
                # only with --cohort, so every other diff's JSON stays as it was
                **({"cohort": self.cohort.to_dict()} if self.cohort is not None else {})}
