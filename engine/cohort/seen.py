"""Which NDJSON ids a cohort run has already given, and where: on disk, so memory stays flat.

A later line with an id already seen is an invalid row naming the first line (the first keeps its
row), so the driver must remember every id of the run. Held in a dict that was the one thing in the
driver growing with the input: ~150 bytes per patient, 1.5 GB for 10^7. Here the ids live in a
SQLite table in a temporary file, with a page cache of CACHE_KIB whatever the number of ids; the
rest of the table is in the file (and the operating system's file cache, which it may drop).

Cost, per batch of rows: its new ids inserted with INSERT OR IGNORE, ROWS to a statement; a
statement that inserts fewer rows than it was given holds an id given before, and only then are
its ids looked up (SELECT ... IN) to name the first place. One transaction for the whole run,
without journal or fsync: the file is thrown away after the run, so nothing needs to survive a
crash. Measured by benchmarks/seen.py (10^6 ids, on 2 shared cores): 2.5 us per id in order (as
the synthetic cohort's), 7-9 us per id in no order (random UUIDs: each insert lands on another
page), against 0.5 us for the dict; memory 10 MB instead of 150-180 MB, whatever the count. The
file is ~56 bytes per UUID, in TMPDIR, removed with its folder when the run ends, also when it
fails (not when the process is killed: then a `guideline-cohort-ids-*` folder stays behind).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from engine.errors import EngineError

CACHE_KIB = 8 * 1024   # SQLite's page cache: the index's memory, whatever the number of ids
ROWS = 500             # rows per INSERT (two variables each); a SELECT ... IN takes twice as many ids


def _key(patient_id: str) -> bytes:
    """The id's exact characters as bytes: JSON admits a lone surrogate (not UTF-8) and NUL, which
    SQLite's TEXT would refuse or cut; as a BLOB every id is stored and compared as given."""
    return patient_id.encode("utf-8", "surrogatepass")


class IdIndexError(EngineError):
    """The index could not be written (no room or no permission in TMPDIR): the run fails, exit 1."""

    def report(self) -> list[str]:
        return [f"error: {self}"]


class SeenIds:
    """The first place of every id given so far; created on the first id, removed by close()."""

    def __init__(self, directory: Path | None = None, cache_kib: int = CACHE_KIB) -> None:
        self._parent = directory
        self._cache_kib = cache_kib
        self._folder: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._rows = ROWS

    def __enter__(self) -> SeenIds:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _open(self) -> sqlite3.Connection:
        parent = self._parent or Path(tempfile.gettempdir())
        try:
            self._folder = Path(tempfile.mkdtemp(prefix="guideline-cohort-ids-", dir=parent))
        except OSError as exc:
            raise IdIndexError(f"cannot create the index of ids given so far in {parent}: {exc.strerror} "
                               "(TMPDIR chooses the folder)") from exc
        db = sqlite3.connect(self._folder / "seen.sqlite", isolation_level=None)  # transactions by hand
        self._db = db
        # Bound by SQLite's variables per statement (999 before 3.32, 32,766 since), two per row.
        self._rows = min(ROWS, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 2)
        # One transaction for the whole run, without journal or fsync: pages are written only when
        # the cache is full (a commit per batch wrote every page a batch touched: with ids in no
        # order, most of the table, 4 KB per id measured). A failed run throws the file away, so
        # nothing needs rolling back.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE",
                       f"cache_size=-{self._cache_kib}"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("CREATE TABLE seen (id BLOB PRIMARY KEY, place TEXT NOT NULL) WITHOUT ROWID")
        db.execute("BEGIN")
        return db

    def firsts(self, ids: Sequence[str | None], places: Sequence[str]) -> list[str | None]:
        """Per entry, the place its id was first given (an earlier batch or earlier in this one), or
        None when it is new (or has no id); the new ones are remembered at their place."""
        if all(i is None for i in ids):
            return [None] * len(ids)
        try:
            return self._firsts(ids, places)
        except sqlite3.Error as exc:  # e.g. "database or disk is full": the run cannot go on
            raise IdIndexError(f"the index of ids given so far ({self._folder or 'not created'}) failed: "
                               f"{exc} (TMPDIR chooses its folder)") from exc

    def _firsts(self, ids: Sequence[str | None], places: Sequence[str]) -> list[str | None]:
        db = self._db or self._open()
        keys = [_key(i) if i is not None else None for i in ids]
        batch: dict[bytes, str] = {}  # each id's first place in this batch
        for key, place in zip(keys, places, strict=True):
            if key is not None:
                batch.setdefault(key, place)
        known = self._insert(db, list(batch.items()))
        earlier: dict[bytes, str] = {}  # where the ids given in an earlier batch were given
        for start in range(0, len(known), self._rows * 2):
            chunk = known[start:start + self._rows * 2]
            marks = ",".join("?" * len(chunk))
            for key, place in db.execute(f"SELECT id, place FROM seen WHERE id IN ({marks})", chunk):
                if place != batch[key]:  # not the place this batch just stored: given before
                    earlier[key] = place
        answer: list[str | None] = []
        for key, place in zip(keys, places):
            if key is None:
                answer.append(None)
            elif key in earlier:
                answer.append(earlier[key])
            else:  # new in this batch: the first time is no repeat, a later time names the first
                answer.append(None if batch[key] == place else batch[key])
        return answer

    def _insert(self, db: sqlite3.Connection, entries: list[tuple[bytes, str]]) -> list[bytes]:
        """INSERT OR IGNORE of `entries` in statements of `self._rows` rows (one statement per row
        costs twice the time); the ids of every statement that inserted fewer rows than it was
        given: some of them were there already. The usual statement brings only new ids, and its
        count says so with no lookup and no row fetched back."""
        maybe: list[bytes] = []
        for start in range(0, len(entries), self._rows):
            chunk = entries[start:start + self._rows]
            values = ",".join(["(?,?)"] * len(chunk))
            cursor = db.execute(f"INSERT OR IGNORE INTO seen (id, place) VALUES {values}",
                                [value for entry in chunk for value in entry])
            if cursor.rowcount < len(chunk):
                maybe.extend(key for key, _ in chunk)
        return maybe

    def close(self) -> None:
        """Close the database and remove its folder; safe to call twice."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
