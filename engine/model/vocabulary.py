"""The guideline language's fixed words, in one place: kinds, urgencies (in clinical order),
comparisons and how each reads to people.

Kinds and urgencies are read from the catalogue's JSON Schema, so a value added there is known
here (ordered as the schema lists it) instead of failing with a KeyError in some product.
"""

from __future__ import annotations

import json
from functools import lru_cache

from engine.resources import SCHEMA_DIR

COMPARISONS = ("lt", "le", "gt", "ge")
SYMBOL = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}
NEGATED_SYMBOL = {"lt": "≥", "le": ">", "gt": "≤", "ge": "<"}  # what "not (x < c)" reads as
# The same comparisons in clinical words ("age 4 years is below 18 years"), and negated.
WORDS = {"lt": "is below", "le": "is at most", "gt": "is above", "ge": "is at least"}
NEGATED_WORDS = {"lt": "is at least", "le": "is above", "gt": "is at most", "ge": "is below"}


@lru_cache(maxsize=None)
def _catalogue_enum(key: str) -> tuple[str, ...]:
    schema = json.loads((SCHEMA_DIR / "catalogue.schema.json").read_text(encoding="utf-8"))
    entry = schema["properties"]["recommendations"]["additionalProperties"]["properties"][key]
    return tuple(entry["enum"])


def kinds() -> tuple[str, ...]:
    """do, do-not, consider, info (as the schema lists them)."""
    return _catalogue_enum("kind")


def urgencies() -> tuple[str, ...]:
    """Most urgent first: immediate, urgent, routine."""
    return _catalogue_enum("urgency")


def urgency_rank(urgency: str) -> int:
    """0 for the most urgent; the order recommendations are listed in (contract section 3)."""
    return urgencies().index(urgency)


def kind_label(kind: str) -> str:
    """How a kind is marked in text, HTML and CDS cards: DO, DO NOT, CONSIDER, NOTE."""
    return {"do-not": "DO NOT", "info": "NOTE"}.get(kind, kind.upper())
