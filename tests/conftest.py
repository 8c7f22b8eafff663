"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


# --- helpers for broken-guideline and CLI tests ------------------------------------------------

def replace_once(path: Path, old: str, new: str) -> Path:
    """Plain-text edit of one file; the old text must occur exactly once.

    A test whose anchor text has disappeared (content was rewritten) fails here loudly instead
    of silently no longer testing anything.
    """
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    assert count == 1, f"{path}: expected exactly one occurrence of {old!r}, found {count}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def position(path: Path, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the start of `needle` (its `occurrence`-th match) in a file."""
    text = path.read_text(encoding="utf-8")
    start = -1
    for _ in range(occurrence + 1):
        start = text.find(needle, start + 1)
        assert start >= 0, f"{path}: {needle!r} occurs fewer than {occurrence + 1} time(s)"
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col


@pytest.fixture
def edit_yaml(bundled_copy: Path):
    """edit_yaml("rules/antibiotics.yaml", old, new): replace text exactly once in the copy."""

    def edit(relative: str, old: str, new: str) -> Path:
        return replace_once(bundled_copy / relative, old, new)

    return edit


@pytest.fixture
def locate():
    """locate(path, needle, occurrence=0) -> (line, col), 1-based, of a text in a file."""
    return position


@pytest.fixture
def fast_cli(monkeypatch: pytest.MonkeyPatch, guideline: engine.Guideline) -> None:
    """In-process CLI runs reuse the session's bundled Guideline instead of reloading it.

    Only for tests about input handling and output shape; loading itself is tested elsewhere
    (and by the subprocess tests, which always load for real).
    """
    from engine.cli import cohort, content, evaluate

    real_load = evaluate.load

    def load(path=None):
        if path is None or Path(path).resolve() == engine.BUNDLED_GUIDELINE.resolve():
            return guideline
        return real_load(path)

    for module in (evaluate, content, cohort):  # every command module that loads a guideline
        monkeypatch.setattr(module, "load", load)


# --- hypothesis profiles ------------------------------------------------------------------------
# "ci" (the default) keeps the property suites to a few seconds each; "long" is for running by
# hand (HYPOTHESIS_PROFILE=long). No deadline: the first example of a run pays for imports and
# durable_rules warm-up, which would make a per-example deadline flaky; the property tests bound
# their own time where a hang is what they look for.
from hypothesis import HealthCheck, Phase, settings

# "ci" does not shrink: a failure on a large generated input (deep nesting, thousands of keys) can
# take hypothesis minutes to minimise; the failing example is printed as found, with a blob to
# replay it (@reproduce_failure), and the known hostile inputs are @example-s already minimal.
settings.register_profile("ci", max_examples=60, deadline=None, print_blob=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One real Dask LocalCluster on loopback per test module (the cohort suites): worker
    processes, as a deployed cluster has; its address for `--scheduler`."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def bundled() -> engine.Guideline:
    """The bundled guideline, loaded once per module (the property suites)."""
    return engine.load()


@pytest.fixture(scope="module")
def fast_main(bundled: engine.Guideline):
    """The in-process CLI reuses one loaded bundled guideline (loading is tested elsewhere)."""
    from engine.cli import cohort, content, evaluate

    with pytest.MonkeyPatch.context() as patch:
        for module in (evaluate, content, cohort):  # every command module that loads a guideline
            patch.setattr(module, "load", lambda path=None: bundled)
        yield

