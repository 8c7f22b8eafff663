"""The command-line options of a run on Dask, the same for `guideline cohort` and `guideline diff --cohort`.

Apart from the rest of engine/cohort/ so that building the parser (`guideline --help`) imports
neither Dask nor the FHIR models.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_cohort_flags(p: argparse.ArgumentParser, iso_date: Callable[[str], Any], diff: bool = False) -> None:
    """--workers, --scheduler, --as-of, --facts (and for `diff`, --cohort INPUT that they go with)."""
    prefix = "with --cohort: " if diff else ""
    if diff:
        p.add_argument("--cohort", metavar="INPUT", help="also compare the versions on these patients (as "
                       "`guideline cohort` reads them), in parallel on Dask")
    p.add_argument("--workers", type=int, metavar="N", help=f"{prefix}worker processes of the embedded cluster "
                   "(default: this machine's cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help=f"{prefix}run on an existing Dask cluster "
                   "(tcp://host:port) instead")
    p.add_argument("--as-of", type=iso_date, metavar="YYYY-MM-DD", help=f"{prefix}with a Bulk Data folder: date "
                   "for ages and the latest Observation counted (default: today, UTC)")
    p.add_argument("--facts", metavar="EXTRA", help=f"{prefix}with a Bulk Data folder: facts FHIR does not carry, "
                   "{\"id\", \"facts\"} per line (NDJSON)")
