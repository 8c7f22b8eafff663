"""Where the bundled guideline folders and the JSON Schemas live.

pyproject.toml maps the repository's `guidelines/` and `schema/` folders into the wheel as
`engine/bundled/guidelines` and `engine/bundled/schema`. An installed wheel reads those; a source
checkout or an editable install reads the repository's folders themselves. Either way there is
one copy, so nothing can drift.
"""

from __future__ import annotations

from pathlib import Path

_ENGINE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    installed = _ENGINE / "bundled" / name
    return installed if installed.is_dir() else _ENGINE.parent / name


SCHEMA_DIR = _folder("schema")
GUIDELINES_DIR = _folder("guidelines")
BUNDLED_GUIDELINE = GUIDELINES_DIR / "neutropenia"
