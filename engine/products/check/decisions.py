"""The editors' decisions on findings they keep: `decisions:` in the case files (cases/*.yaml).

A decision names a finding by its kind and subject (`codes` for a conflict, `expectation` for a
gap, `rule` for a dead or shadowed rule, `fact` for an unread fact or a shadowed threshold) and
says why it stays. An accepted finding is still reported, with its reason, but does not fail
`check`; a decision that matches no finding is reported as stale, so none outlives its finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.loader import schema as _schema
from engine.loader.folder import display_name
from engine.loader.yamlio import read_yaml
from engine.products.check.findings import Finding

SUBJECTS = ("codes", "expectation", "rule", "fact")


@dataclass(frozen=True)
class Decision:
    kind: str
    subject: dict[str, Any]
    reason: str
    where: str

    def matches(self, finding: Finding) -> bool:
        if finding.kind != self.kind:
            return False
        for key, want in self.subject.items():
            got = getattr(finding, key)
            if (sorted(want) != sorted(got)) if key == "codes" else (want != got):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.subject, "reason": self.reason, "decision": self.where}


def load_decisions(folder: Path) -> tuple[list[Decision], list[Problem]]:
    """Every decision of `folder/cases/*.yaml` (schema-checked like the cases themselves)."""
    decisions: list[Decision] = []
    problems: list[Problem] = []
    for path in sorted((folder / "cases").glob("*.yaml")):
        doc, parse_problems = read_yaml(path, display_name(folder, path))
        schema_problems = [] if parse_problems else _schema.check(doc, "cases")
        problems += parse_problems + schema_problems
        if parse_problems or schema_problems:
            continue
        for i, raw in enumerate(doc.data.get("decisions", ())):
            line, col = doc.where(("decisions", i))
            subject = {key: raw[key] for key in SUBJECTS if key in raw}
            decisions.append(Decision(raw["kind"], subject, " ".join(raw["reason"].split()),
                                      f"{doc.file}:{line}:{col}"))
    return decisions, problems


def apply(findings: list[Finding], decisions: list[Decision]) -> tuple[list[Finding], list[Decision]]:
    """(findings with their decisions applied, decisions that match no finding)."""
    used: set[int] = set()
    out = []
    for finding in findings:
        match = next((i for i, d in enumerate(decisions) if d.matches(finding)), None)
        if match is not None:
            used.add(match)
            finding = finding.accept(decisions[match].reason, decisions[match].where)
        out.append(finding)
    return out, [d for i, d in enumerate(decisions) if i not in used]
