"""Shared fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine


@pytest.fixture(scope="session")
def guideline() -> engine.Guideline:
    return engine.load()


@pytest.fixture
def bundled_copy(tmp_path: Path) -> Path:
    target = tmp_path / "neutropenia"
    shutil.copytree(engine.BUNDLED_GUIDELINE, target)
    return target
