"""Where content came from: a parsed file and the line and column of every value in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem

Path_ = tuple[str | int, ...]


@dataclass
class Document:
    """A parsed YAML file: its data and the (line, column) of every path in it."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_) -> tuple[int, int]:
        """The position of `path`, or of its closest located ancestor."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(self, path: Path_, code: str, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, code, message)
