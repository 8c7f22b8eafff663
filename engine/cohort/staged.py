"""A file written under a temporary name beside its target and renamed onto it when complete.

A failed or interrupted `guideline cohort` leaves no half file that could be read as a whole
population, and an existing file of that name stays as it was until the new one is complete.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from engine.errors import BadInputError, RuleEngineError


class Staged:
    """A file opened under a temporary name beside `target` (same folder, so the rename is atomic)
    and moved onto it by `commit`. A target that exists and is not a regular file (/dev/null, a
    named pipe) is written in place: there is nothing to rename onto."""

    def __init__(self, target: Path) -> None:
        self.target = target
        in_place = target.exists() and not target.is_file()
        self.temp: Path | None = None if in_place else target.with_name(
            f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            if self.temp is None:
                self.file: BinaryIO = target.open("wb")
            else:  # mode 0o666 under the umask, as open() gives; O_EXCL: never another run's file
                fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                self.file = os.fdopen(fd, "wb")
        except OSError as exc:
            raise BadInputError(f"cannot write {target}: {exc.strerror}") from exc

    def commit(self) -> None:
        self.file.close()
        if self.temp is not None:
            os.replace(self.temp, self.target)

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:  # the flush of a file being thrown away (a full disk): nothing to keep
            pass
        finally:
            if self.temp is not None:
                self.temp.unlink(missing_ok=True)

    def failed(self, exc: OSError) -> RuleEngineError:
        """A write that failed mid-run (a full disk): the run failed, and says where."""
        return RuleEngineError(f"cannot write {self.target}: {exc.strerror or exc}")
