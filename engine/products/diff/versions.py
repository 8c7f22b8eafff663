"""The version check of `guideline diff`: the semantic-versioning bump the changes require against the bump made."""

from __future__ import annotations

import re
from typing import Any

from engine.products.diff.results import (
    MAJOR,
    MINOR,
    NONE,
    PATCH,
    Behaviour,
    Change,
    Side,
    VersionCheck,
    rank,
)

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def _parse(version: str) -> tuple[tuple[int, int, int], tuple[Any, ...] | None] | None:
    m = _SEMVER.match(version)
    if not m:
        return None
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split(".")) if m.group(4) else None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))), pre


def _precedes(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None) -> bool:
    """Pre-release a before b, for the same core version (a release follows all its pre-releases)."""
    if a == b:
        return False
    return b is None or (a is not None and a < b)


def _bump(old: str, new: str) -> tuple[str, str | None]:
    """(level of the bump made, the version semver expects instead when lower parts were not reset)."""
    po, pn = _parse(old), _parse(new)
    if po is None or pn is None:
        return "invalid", None
    (o, o_pre), (n, n_pre) = po, pn
    if n < o or (n == o and _precedes(n_pre, o_pre)):
        return "downgrade", None
    if n == o:
        return ("none" if n_pre == o_pre else "pre-release"), None
    level, position = next((lvl, i) for i, lvl in enumerate((MAJOR, MINOR, PATCH)) if n[i] != o[i])
    reset = n[:position + 1] + (0,) * (2 - position)
    expected = None if n == reset else ".".join(map(str, reset))
    return level, expected


def version_check(old: Side, new: Side, semantic: tuple[Change, ...], behaviour: Behaviour) -> VersionCheck:
    """The bump these changes require against the bump made; ok when it is at least that and well-formed."""
    required = max((c.level for c in semantic), key=rank, default=NONE)
    messages: list[str] = []
    if required != NONE:
        reasons = [c.text for c in semantic if c.level == required]
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        messages.append(f"{required.upper()} required by: {'; '.join(reasons[:3])}{more}")
    if behaviour.changed and rank(required) < rank(MINOR):
        required = MINOR
        messages.append(f"{len(behaviour.changed)} patient(s) get other recommendations or derived facts: "
                        "at least MINOR")
    if old.digest == new.digest:
        messages.append("same content digest: the guidelines are identical in content"
                        + (f", but the version changed {old.version} → {new.version}" if old.version != new.version
                           else ""))
    elif not semantic:
        messages.append("the digests differ but no change in meaning was found (e.g. items of a condition "
                        "re-ordered)")
    elif all(c.level == NONE for c in semantic):
        messages.append("only the version changed: the content is otherwise identical")
    actual, expected = _bump(old.version, new.version)
    ok = True
    if actual == "invalid":
        ok = False
        messages.append(f"{old.version} → {new.version}: not semantic versions (MAJOR.MINOR.PATCH)")
    elif actual == "downgrade":
        ok = False
        messages.append(f"the version goes down: {old.version} → {new.version}")
    elif actual == "pre-release":
        messages.append(f"{old.version} → {new.version} is a pre-release step: semver promises no compatibility "
                        "between pre-releases")
    elif actual == NONE and required != NONE:
        ok = False
        what = "logic changed" if rank(required) >= rank(MINOR) else "content changed"
        messages.append(f"{what} without a version bump (still {new.version}): a {required.upper()} bump is "
                        "required")
    elif rank(actual) < rank(required):
        ok = False
        messages.append(f"{old.version} → {new.version} is a {actual.upper()} bump; these changes need "
                        f"{required.upper()}")
    elif rank(actual) > rank(required):
        messages.append(f"{old.version} → {new.version} is a {actual.upper()} bump, more than the "
                        f"{required.upper()} these changes need (allowed)")
    if expected is not None:
        ok = False
        messages.append(f"{old.version} → {new.version}: a {actual.upper()} bump resets the lower numbers to 0 "
                        f"(expected {expected})")
    return VersionCheck(required, actual, ok, tuple(messages))
