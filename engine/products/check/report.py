"""`guideline check`: run every finding kind, confirm the witnesses, apply the editors'
decisions, and report as text (people) or JSON (programs)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from engine.errors import FAILED, OK, GuidelineInvalidError
from engine.guideline import Guideline
from engine.model.content import atoms
from engine.products.check import findings as _f
from engine.products.check.confirm import confirm
from engine.products.check.decisions import Decision, apply, load_decisions
from engine.products.check.encode import Encoding
from engine.products.check.probe import probe_guideline
from engine.products.check.search import Searcher


@dataclass(frozen=True)
class CheckReport:
    guideline: dict[str, str]
    findings: tuple[_f.Finding, ...]
    stale: tuple[Decision, ...]
    queries: int
    seconds: float

    @property
    def open(self) -> list[_f.Finding]:
        """Findings no decision accepts: these fail `check`."""
        return [f for f in self.findings if f.accepted is None]

    def to_dict(self) -> dict[str, Any]:
        return {"guideline": {k: self.guideline[k] for k in ("id", "version", "digest")},
                "findings": [f.to_dict() for f in self.findings],
                "open": len(self.open), "accepted": len(self.findings) - len(self.open),
                "stale_decisions": [d.to_dict() for d in self.stale],
                "queries": self.queries, "seconds": round(self.seconds, 3)}


def check(guideline: Guideline, decisions: list[Decision] | None = None) -> CheckReport:
    """Every finding of every kind for `guideline`, witnesses confirmed, and the decisions applied
    (default: those of the guideline folder's case files; GuidelineInvalidError if malformed)."""
    start = time.perf_counter()
    if decisions is None:
        decisions, problems = load_decisions(Path(guideline.path))
        if problems:
            raise GuidelineInvalidError(sorted(problems))
    probed = probe_guideline(guideline)
    content = guideline.content
    enc = Encoding(probed.content, probed.program)
    search = Searcher(enc, _cuts(probed))
    found: list[_f.Finding] = [
        *_f.conflicts(content, enc, search), *_f.gaps(content, enc, search), *_f.dead(content, enc, search),
        *_f.shadowed_rules(content, enc, search), *_f.shadowed_thresholds(content), *_f.unread(content)]
    confirmed = [confirm(f, guideline, probed) for f in found]
    final, stale = apply(confirmed, decisions)
    return CheckReport(guideline.info, tuple(final), tuple(stale), search.queries, time.perf_counter() - start)


def _cuts(guideline: Guideline) -> dict[str, list[Fraction]]:
    """Every threshold written on each fact (a derived fact copying an input shares its name),
    with the input's range ends: where a pleasant witness value must not sit."""
    content = guideline.content
    conds = [r.when for r in content.rules] + [o.when for s in content.scores for i in s.items for o in i.options]
    cuts: dict[str, set[Fraction]] = {}
    for cond in conds:
        for atom in atoms(cond):
            if atom.binding is not None and atom.binding.exact is not None:
                cuts.setdefault(atom.fact, set()).add(atom.binding.exact)
    for name, spec in content.facts.items():
        if spec.range is not None:
            cuts.setdefault(name, set()).update(Fraction(str(v)) for v in spec.range)
    return {name: sorted(values) for name, values in cuts.items()}


def subject(finding: _f.Finding) -> str:
    """What a finding is about, in the words a decision names it by."""
    if finding.kind == "conflict":
        return " + ".join(finding.codes)
    if finding.kind == "gap":
        return finding.expectation or ""
    return finding.rule or finding.fact or ""


def text(report: CheckReport) -> str:
    g = report.guideline
    accepted = len(report.findings) - len(report.open)
    lines = [f"guideline check: {g['id']} {g['version']} — {len(report.open)} open finding(s), {accepted} accepted "
             f"({report.queries} solver queries, {report.seconds:.1f} s)"]
    for f in report.findings:
        lines += ["", f"{f.kind}{' [accepted]' if f.accepted else ''}: {subject(f)}", f"  {f.message}"]
        lines += [f"  at {loc}" for loc in f.locations]
        if f.witness is not None:
            lines.append(f"  witness: {json.dumps(f.witness, sort_keys=True)}")
            lines.append(f"  the engine recommends: {', '.join(f.confirmed) or 'nothing'}")
        if f.accepted:
            lines.append(f"  accepted ({f.accepted[1]}): {f.accepted[0]}")
    for d in report.stale:
        lines += ["", f"stale decision at {d.where}: no {d.kind} finding matches "
                  f"{json.dumps(d.subject, sort_keys=True)}; remove it"]
    if not report.findings:
        lines.append("no finding: no declared conflict can happen, every expected guidance is given, "
                     "no dead or shadowed rule, every derived fact is read")
    return "\n".join(lines) + "\n"


def run_check(guideline: Guideline, fmt: str, out: TextIO) -> int:
    """The command: 0 nothing open; 1 open findings or stale decisions (2, invalid, raised)."""
    report = check(guideline)
    if fmt == "json":
        out.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(text(report))
    return FAILED if report.open or report.stale else OK
