"""`guideline cohort`: many patients (NDJSON or a FHIR Bulk Data export) evaluated in parallel on Dask."""

from __future__ import annotations

import argparse
from typing import TextIO

from engine.cli.common import folder_of
from engine.guideline import load


def cmd_cohort(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    from engine.cohort import arguments  # Dask is imported by the cohort commands only

    return arguments.cohort(load(folder_of(args)), args, out, err, stdin)
