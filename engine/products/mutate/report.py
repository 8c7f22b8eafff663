"""The mutation report: the score, every survivor located with a hint, as text or contract JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.products.mutate.equivalents import Equivalent
from engine.products.mutate.mutants import Mutant
from engine.products.mutate.runner import Trial


@dataclass(frozen=True)
class Report:
    mutants: list[Mutant]
    trials: list[Trial]
    equivalent: dict[int, Equivalent]
    seconds: float
    workers: int

    def _with(self, status: str) -> list[Trial]:
        return [t for t in self.trials if t.status == status and t.index not in self.equivalent]

    @property
    def killed(self) -> list[Trial]:
        return self._with("killed")

    @property
    def survivors(self) -> list[Trial]:
        return self._with("survived")

    @property
    def stillborn(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "stillborn"]

    @property
    def counted(self) -> int:
        """Mutants in the score: neither stillborn nor explained as equivalent."""
        return len(self.killed) + len(self.survivors)

    @property
    def score(self) -> float:
        return round(100.0 * len(self.killed) / self.counted, 1) if self.counted else 100.0


def _entry(m: Mutant, **extra: Any) -> dict[str, Any]:
    file, line, col = m.location
    return {"file": file, "line": line, "col": col, "rule": m.rule, "mutation": m.mutation, **extra}


def to_dict(report: Report) -> dict[str, Any]:
    """Contract section 9's JSON (`score`, `mutants`, `killed`, `survivors`), and more keys."""
    ms = report.mutants
    return {
        "score": report.score,
        "mutants": report.counted,
        "killed": len(report.killed),
        "survivors": [_entry(ms[t.index], operator=ms[t.index].operator, hint=ms[t.index].hint)
                      for t in report.survivors],
        "equivalent": [_entry(ms[i], reason=e.reason) for i, e in sorted(report.equivalent.items())],
        "stillborn": [_entry(ms[t.index], reason=t.detail) for t in report.stillborn],
        "generated": len(ms),
        "seconds": round(report.seconds, 1),
        "workers": report.workers,
    }


def _line(m: Mutant) -> str:
    file, line, col = m.location
    return f"{file}:{line}:{col}: {m.rule}: {m.mutation}"


def to_text(report: Report) -> str:
    ms = report.mutants
    lines = [f"mutation score: {len(report.killed)}/{report.counted} mutants killed ({report.score:.1f}%)",
             f"  {len(ms)} generated: {len(report.stillborn)} stillborn (do not validate or compile; not "
             f"counted), {len(report.equivalent)} explained as equivalent in the case files; "
             f"{report.seconds:.1f} s on {report.workers} worker{'s' if report.workers != 1 else ''}"]
    if report.survivors:
        lines += ["", f"surviving mutants ({len(report.survivors)}): no case fails on them"]
        for t in report.survivors:
            lines += [_line(ms[t.index]), f"    hint: {ms[t.index].hint}"]
    if report.equivalent:
        lines += ["", "equivalent (explained in the case files, not counted):"]
        lines += [f"{_line(ms[i])}\n    because: {e.reason}" for i, e in sorted(report.equivalent.items())]
    if report.stillborn:
        lines += ["", "stillborn (not counted):"]
        lines += [f"{_line(ms[t.index])}\n    {t.detail}" for t in report.stillborn]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), ensure_ascii=False, indent=2) + "\n"
