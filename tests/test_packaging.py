"""The wheel carries every package, the bundled guideline and the schemas (scripts/wheel-smoke.sh runs it)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import engine
from engine import resources

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# The folders outside engine/ that the wheel maps into it (engine.bundled.*), and their globs.
DATA_FOLDERS = ("guidelines", "schema")


def _package_folder(package: str) -> Path:
    """Where setuptools takes a listed package from: its package-dir mapping, else its dotted path."""
    mapped = SETUPTOOLS.get("package-dir", {}).get(package)
    return ROOT / mapped if mapped is not None else ROOT.joinpath(*package.split("."))


def _tracked(*folders: str) -> list[str]:
    """`git ls-files FOLDER...`: what a clean clone has, so an untracked scratch file cannot pass or fail."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot list the tracked files")
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", *folders], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"not a git checkout ({done.stderr.strip()})")
    return [line for line in done.stdout.splitlines() if (ROOT / line).is_file()]


def _data_package(folder: str) -> str:
    """The package a data folder is mapped to (engine.bundled.guidelines for guidelines/)."""
    packages = [p for p, d in SETUPTOOLS.get("package-dir", {}).items() if d == folder]
    assert len(packages) == 1, f"pyproject.toml: {folder}/ should be mapped to one package, not {packages}"
    return packages[0]


def test_every_engine_package_is_listed() -> None:
    # packages is an explicit list (the data packages are mapped, not found): a new subpackage must be added.
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "engine").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert not found - listed, f"pyproject.toml [tool.setuptools] packages misses {sorted(found - listed)}"
    absent = [p for p in listed if not _package_folder(p).is_dir()]
    assert not absent, f"pyproject.toml lists packages with no folder: {absent}"


def test_package_data_covers_every_guideline_and_schema_file() -> None:
    for folder in DATA_FOLDERS:
        package = _data_package(folder)
        globs = PYPROJECT["tool"]["setuptools"]["package-data"].get(package, [])
        # setuptools resolves package-data globs relative to the package's folder, `**` recursively.
        covered = {str(p.relative_to(ROOT)) for g in globs for p in (ROOT / folder).glob(g) if p.is_file()}
        missed = sorted(set(_tracked(folder)) - covered)
        assert not missed, f"package-data of {package} ({globs}) leaves out {missed}"


def test_pytest_is_a_test_extra_not_a_runtime_dependency() -> None:
    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=~!;]", r, maxsplit=1)[0].lower() for r in requirements}

    runtime = names(PYPROJECT["project"]["dependencies"])
    test = names(PYPROJECT["project"]["optional-dependencies"]["test"])
    assert not {"pytest", "hypothesis"} & runtime
    assert {"pytest", "hypothesis"} <= test


def test_resources_are_the_repository_folders_in_a_checkout() -> None:
    if Path(engine.__file__).resolve().parent != ROOT / "engine":
        pytest.skip(f"engine is imported from {engine.__file__}, not from this checkout")
    assert resources.SCHEMA_DIR == ROOT / "schema"
    assert resources.GUIDELINES_DIR == ROOT / "guidelines"
    assert resources.BUNDLED_GUIDELINE == engine.BUNDLED_GUIDELINE == ROOT / "guidelines" / "neutropenia"
    assert (resources.SCHEMA_DIR / "rules.schema.json").is_file()


def _bdist_wheel_missing() -> str | None:
    """Why this venv's setuptools cannot build the wheel offline, or None when it can."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed in this venv"
    major_minor = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    # bdist_wheel is part of setuptools from 70.1; before that it needs the `wheel` package.
    if major_minor < (70, 1):
        try:
            importlib.metadata.version("wheel")
        except importlib.metadata.PackageNotFoundError:
            return f"setuptools {version} has no bdist_wheel (needs setuptools>=70.1 or the wheel package)"
    return None


def test_wheel_carries_the_guideline_the_schemas_and_py_typed(tmp_path: Path) -> None:
    why = _bdist_wheel_missing()
    if why:
        pytest.skip(f"{why}; scripts/wheel-smoke.sh builds and checks the wheel")
    # Built from a copy: a stale build/ in the checkout would leak into the wheel, and none is left behind.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("engine", *DATA_FOLDERS):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", str(source), "-w", str(tmp_path / "dist")],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {"engine/py.typed"}
    expected |= {f"engine/bundled/{path}" for path in _tracked(*DATA_FOLDERS)}
    expected |= {path for path in _tracked("engine") if path.endswith(".py")}
    assert not expected - names, f"{wheel.name} misses {sorted(expected - names)}"
    # Nothing but the package and its metadata: no tests, examples or docs.
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"engine"}, sorted(tops)


def test_ci_runs_the_readme_test_command_then_the_wheel_smoke_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.*?)\n```", readme.split("## Quick start", 1)[1], flags=re.DOTALL)
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in lines, f".ci/run does not run README's test command {commands[1]!r}"
    smoke = ROOT / "scripts" / "wheel-smoke.sh"
    assert smoke.stat().st_mode & 0o111, f"{smoke} is not executable"
    assert lines.index("scripts/wheel-smoke.sh") > lines.index(commands[1])
