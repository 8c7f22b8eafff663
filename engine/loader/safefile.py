"""Reading a guideline file safely: a regular file inside the folder, of bounded size, as UTF-8 text.

A guideline folder may come from anyone (a pull request, a download). A link `rules/zz.yaml ->
/dev/zero` once ran the process out of memory, and a link to `/etc/passwd` echoed that file in
an error. So a file is read only if it resolves to a regular file inside the guideline folder;
anything else is a located problem naming the link, and its content is never read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import Problem

MAX_FILE_BYTES = 1024 * 1024        # one guideline file; the bundled ones are under 20 KB
MAX_FOLDER_BYTES = 4 * 1024 * 1024  # all files of one guideline folder together


def _problem(name: str, code: str, message: str) -> tuple[None, list[Problem]]:
    return None, [Problem(name, 1, 1, code, message)]


def read_text(path: Path, name: str, root: Path | None = None) -> tuple[str | None, list[Problem]]:
    """(the file's text, []) or (None, [the problem]); never raises, never reads a non-file.

    `root`: the guideline folder; a path that resolves outside it (through a link) is refused.
    """
    try:
        real = path.resolve(strict=True)
        if root is not None and not real.is_relative_to(root.resolve(strict=True)):
            return _problem(name, "outside-folder", "is a link to a file outside the guideline folder; "
                            "not read (a guideline reads only files inside its folder)")
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return _problem(name, "unreadable", f"cannot be read ({exc.strerror or type(exc).__name__})")
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return _problem(name, "not-a-file", "is not a regular file (a device, FIFO or socket); not read")
        if info.st_size > MAX_FILE_BYTES:
            return _problem(name, "too-large", f"is {info.st_size:,} bytes; a guideline file may have at most "
                            f"{MAX_FILE_BYTES:,}")
        data = handle.read(MAX_FILE_BYTES + 1)  # bounded even if the file grows while read
    if len(data) > MAX_FILE_BYTES:
        return _problem(name, "too-large", f"has more than {MAX_FILE_BYTES:,} bytes")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark, as some Windows editors write: harmless
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return _problem(name, "unreadable", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, "
                        f"column {col} cannot start or continue a character); save it as UTF-8")
