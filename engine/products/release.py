"""Release checks: an approved version's content digest is recorded in releases.yaml and must not change.

releases.yaml is not in the loader's LAYOUT, so it never feeds the content digest it records.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import BadInputError, EngineError, Problem
from engine.loader import schema as _schema
from engine.loader.folder import display_name
from engine.loader.yamlio import read_yaml
from engine.model.content import Content
from engine.model.source import Document
from engine.pipeline import analyse
from engine.resources import BUNDLED_GUIDELINE

RELEASES_FILE = "releases.yaml"


@dataclass(frozen=True)
class Release:
    """One recorded release: the content digest a version had when it was released."""

    version: str
    digest: str
    recorded: str
    by: str | None = None
    index: int = 0  # position in releases.yaml, to locate problems


@dataclass(frozen=True)
class Recorded:
    """The outcome of `record`: the entry, and whether it was already there (nothing written)."""

    release: Release
    already: bool
    file: Path


class ReleaseRefusedError(BadInputError):
    """`record` refused: the release checks failed (problems are located, sorted); nothing was written."""

    def __init__(self, problems: list[Problem], folder: Path | None = None):
        self.problems = sorted(set(problems))
        self.folder = folder
        super().__init__("\n".join(map(str, self.problems)))

    def report(self) -> list[str]:
        where = f" in {self.folder}" if self.folder is not None else ""
        return [*map(str, self.problems), f"release refused: {len(self.problems)} problem(s){where}"]


class ReleaseWriteError(EngineError):
    """releases.yaml could not be written: the release is not recorded (exit 1, like any failure to finish)."""

    def __init__(self, folder: Path, exc: OSError):
        super().__init__(f"{folder}: cannot record the release: {exc.strerror or exc}")

    def report(self) -> list[str]:
        return [str(self)]


def read_releases(folder: Path) -> tuple[Document | None, list[Release], list[Problem]]:
    """(document, releases, problems) of releases.yaml; (None, [], []) when there is none."""
    path = folder / RELEASES_FILE
    if not path.exists():
        return None, [], []
    doc, problems = read_yaml(path, display_name(folder, path))
    if problems:
        return doc, [], problems
    problems = _schema.check(doc, "releases")
    if problems:
        return doc, [], problems
    releases = [Release(e["version"], e["digest"], e["recorded"], e.get("by"), i)
                for i, e in enumerate(doc.data["releases"])]
    first: dict[str, Release] = {}
    for r in releases:
        if r.version in first:
            problems.append(doc.problem(("releases", r.index, "version"), "duplicate-version",
                                        f"version {r.version} is recorded twice (first as entry "
                                        f"{first[r.version].index + 1}); a version has one digest"))
        first.setdefault(r.version, r)
    return doc, releases, problems


def _metadata_problems(content: Content) -> Iterator[Problem]:
    """Release checks on guideline.yaml: approved, reviewed, with an effective date."""
    meta, where = content.metadata, content.where["guideline"]
    if meta.status != "approved":
        yield where.problem("release-status", f"status is '{meta.status}'; only an approved guideline "
                            "can be released", "status")
    if not meta.reviewers:
        yield where.problem("release-reviewers", "no reviewers: a released guideline names who reviewed it",
                            "reviewers")
    if meta.effective_date is None:
        yield where.problem("release-effective-date", "no effective_date: a released guideline says "
                            "from when it applies")


def _digest_problems(content: Content, digest: str, doc: Document | None,
                     releases: list[Release]) -> Iterator[Problem]:
    version = content.metadata.version
    entry = next((r for r in releases if r.version == version), None)
    if entry is None or doc is None:
        yield content.where["guideline"].problem(
            "release-unrecorded", f"version {version} has no digest recorded in {RELEASES_FILE}; "
            "record it with `guideline release`", "version")
    elif entry.digest != digest:
        yield doc.problem(("releases", entry.index, "digest"), "release-digest-mismatch",
                          f"the content of version {version} changed since it was released on "
                          f"{entry.recorded}: digest is now {digest}, recorded {entry.digest}; "
                          "a changed guideline needs a new version")


def _check(folder: Path, *, release: bool,
           digest_check: bool) -> tuple[Content | None, str, Document | None, list[Release], list[Problem]]:
    analysis = analyse(folder)
    content, digest, problems = analysis.content, analysis.digest, analysis.problems
    doc, releases, release_problems = read_releases(folder) if folder.is_dir() else (None, [], [])
    problems = problems + release_problems
    if release and content is not None:
        problems += _metadata_problems(content)
        if digest_check and digest and not release_problems:
            problems += _digest_problems(content, digest, doc, releases)
    return content, digest, doc, releases, problems


def validate(path: Path | str | None = None, *, release: bool = False) -> list[Problem]:
    """`guideline validate [--release]`: every problem, sorted; [] when valid (and releasable).

    Without `release`, releases.yaml (when present) is checked for schema and duplicate versions;
    with it, the guideline must also be approved, reviewed, dated, and its content digest must be
    the one recorded for its version.
    """
    folder = Path(path) if path is not None else BUNDLED_GUIDELINE
    return sorted(set(_check(folder, release=release, digest_check=True)[4]))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _entry_yaml(release: Release) -> str:
    lines = [f"  - version: {_scalar(release.version)}", f"    digest: {_scalar(release.digest)}",
             f"    recorded: {_scalar(release.recorded)}"]
    if release.by:
        lines.append(f"    by: {_scalar(release.by)}")
    return "\n".join(lines) + "\n"


def _entries(data: object) -> list[tuple[object, ...]] | None:
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        return None
    return [(e.get("version"), e.get("digest"), e.get("recorded"), e.get("by"))
            for e in data["releases"] if isinstance(e, dict)]


def _write(folder: Path, file: Path, releases: list[Release], new: Release) -> None:
    """Write releases.yaml with `new` appended: atomically, and only text that reads back right.

    Appending keeps the editors' comments; when the old layout cannot be extended by appending
    (`releases: []`, another indentation) the file is rewritten from its entries.
    """
    expected = [(r.version, r.digest, r.recorded, r.by) for r in [*releases, new]]
    schema = os.path.relpath(_schema.SCHEMA_DIR / "releases.schema.json", folder.resolve())
    candidates = [f"# yaml-language-server: $schema={schema}\n"
                  "# Content digests of released versions, written by `guideline release`; "
                  "checked by `guideline validate --release`.\n"
                  "releases:\n" + "".join(_entry_yaml(r) for r in [*releases, new])]
    if file.exists():
        old = file.read_text(encoding="utf-8")
        candidates.insert(0, old + ("" if old.endswith("\n") else "\n") + _entry_yaml(new))
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        for text in candidates:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            doc, problems = read_yaml(tmp, str(tmp))
            if not problems and _entries(doc.data) == expected:
                os.replace(tmp, file)
                dir_fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
                return
        raise OSError(f"could not write {file} so that it reads back as written")
    finally:
        tmp.unlink(missing_ok=True)


def record(path: Path | str | None = None, *, by: str | None = None) -> Recorded:
    """`guideline release`: record the current version's content digest in releases.yaml.

    Refuses (ReleaseRefusedError) when the guideline is invalid, not approved, unreviewed or
    undated, or when its version is already recorded with a different digest. Recording a
    version again with the same digest changes nothing.
    """
    folder = Path(path) if path is not None else BUNDLED_GUIDELINE
    if not folder.is_dir():
        raise ReleaseRefusedError(analyse(folder).problems, folder)
    # The folder lock serialises concurrent `guideline release` runs (read, check, write).
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        content, digest, doc, releases, problems = _check(folder, release=True, digest_check=False)
        if problems:
            raise ReleaseRefusedError(problems, folder)
        assert content is not None and digest
        version = content.metadata.version
        file = folder / RELEASES_FILE
        entry = next((r for r in releases if r.version == version), None)
        if entry is not None:
            if entry.digest != digest:
                raise ReleaseRefusedError(list(_digest_problems(content, digest, doc, releases)), folder)
            return Recorded(entry, True, file)
        new = Release(version, digest, _now(), by.strip() if by and by.strip() else None, len(releases))
        try:
            _write(folder, file, releases, new)
        except OSError as exc:
            raise ReleaseWriteError(folder, exc) from exc
        return Recorded(new, False, file)
    finally:
        os.close(dir_fd)
