"""The two guideline versions `guideline diff` compares: two folders, or one folder at two git revisions."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BadInputError

# `REV..` and `REV..WORKTREE` both mean "compare with the files as they are now".
WORKTREE = "WORKTREE"


class SourceError(BadInputError):
    """The versions to compare cannot be found: bad arguments, not a git repository, unknown revision."""


@dataclass(frozen=True)
class Checkout:
    """A guideline folder to compare, and how to name it to people (problems name the label, not /tmp)."""

    folder: Path
    label: str


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except OSError as exc:
        raise SourceError(f"cannot run git: {exc.strerror}") from exc


def _toplevel(folder: Path) -> Path:
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a guideline folder (no such directory)")
    done = _git(folder, "rev-parse", "--show-toplevel")
    if done.returncode:
        raise SourceError(f"{folder}: not inside a git repository")
    return Path(done.stdout.decode().strip()).resolve()


def split_range(spec: str) -> tuple[str, str | None]:
    """'A..B' -> ('A', 'B'); 'A..' and 'A..WORKTREE' -> ('A', None), None being the working tree."""
    if spec.count("..") != 1 or "..." in spec:
        raise SourceError(f"--rev {spec!r}: expected REV1..REV2 (REV2 may be empty or {WORKTREE})")
    old, new = spec.split("..")
    if not old:
        raise SourceError(f"--rev {spec!r}: the old revision is missing")
    return old, (None if new in ("", WORKTREE) else new)


def _extract(repo: Path, rev: str, relative: str, target: Path) -> Path:
    verified = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if verified.returncode:
        raise SourceError(f"unknown revision {rev!r} in {repo}")
    # git archive takes the path as it is in the tree; '.' when the guideline is the repo itself.
    done = _git(repo, "archive", "--format=tar", rev, "--", relative)
    if done.returncode:
        raise SourceError(f"{rev}:{relative}: not in that revision "
                            f"({done.stderr.decode(errors='replace').strip()})")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        # The 'data' filter refuses links and paths that leave the target directory.
        tar.extractall(target, filter="data")
    folder = target / relative
    if not folder.is_dir():
        raise SourceError(f"{rev}:{relative}: not a folder in that revision")
    return folder


@contextmanager
def checkouts(spec: str, folder: Path) -> Iterator[tuple[Checkout, Checkout]]:
    """(old, new) for `--rev spec` on `folder`; the temporary copies are removed on exit."""
    old_rev, new_rev = split_range(spec)
    repo = _toplevel(folder)
    try:
        relative = folder.resolve().relative_to(repo).as_posix()
    except ValueError as exc:
        raise SourceError(f"{folder}: not inside the repository {repo}") from exc
    with tempfile.TemporaryDirectory(prefix="guideline-diff-") as tmp:
        old = Checkout(_extract(repo, old_rev, relative, Path(tmp) / "old"), f"{old_rev}:{relative}")
        if new_rev is None:
            new = Checkout(folder, str(folder))
        else:
            new = Checkout(_extract(repo, new_rev, relative, Path(tmp) / "new"), f"{new_rev}:{relative}")
        yield old, new


@contextmanager
def sources(old: str | None, new: str | None, rev: str | None, default: Path) -> Iterator[tuple[Checkout, Checkout]]:
    """`OLD NEW`, or `--rev REV1..REV2 [DIR]` (DIR defaulting to `default`)."""
    if rev is not None:
        if new is not None:
            raise SourceError("with --rev give at most one guideline folder")
        with checkouts(rev, Path(old) if old else default) as pair:
            yield pair
        return
    if old is None or new is None:
        raise SourceError("give two guideline folders (OLD NEW), or --rev REV1..REV2 [DIR]")
    yield Checkout(Path(old), old), Checkout(Path(new), new)
