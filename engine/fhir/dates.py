"""Dates and times of the input: FHIR date/dateTime/instant as UTC intervals, the as-of date and cutoff."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.errors import InputFactsError, InputProblem

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")           # exactly YYYY-MM-DD: no week dates, no 20240503
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")  # FHIR year or year-month, no day
# FHIR allows a leap second (ss = 60), which datetime cannot hold: the library leaves it a string.
_LEAP_SECOND = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}):60(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$")

Interval = tuple[datetime, datetime]  # earliest and latest instant a FHIR time can mean (UTC)


def as_of_date(text: str) -> date:
    """A date written YYYY-MM-DD (`--as-of`, `as_of="..."`); InputFactsError located at "as-of date".

    The one parser of a calendar date given by a person: the CLI, the FHIR reader and the CDS
    Hooks `asOf` all read dates here, so they accept and refuse the same text.
    """
    if not _ISO_DATE.fullmatch(text):
        raise InputFactsError([InputProblem("as-of date", f"'{text}' is not a date YYYY-MM-DD")])
    try:
        return date.fromisoformat(text)
    except ValueError as exc:  # 2024-02-30
        raise InputFactsError([InputProblem("as-of date", f"'{text}': {exc}")]) from exc


def zoned_datetime(text: Any) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset, else None (a time without a zone is ambiguous)."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def date_or_zoned(text: Any) -> date | datetime | None:
    """A date YYYY-MM-DD (the whole day) or a date-time with a UTC offset, else None."""
    if isinstance(text, str):
        try:
            return as_of_date(text)
        except InputFactsError:
            pass
    return zoned_datetime(text)


def as_of_cutoff(as_of: date | datetime | str | None) -> tuple[date, datetime]:
    """(the as-of date, the last instant counted): default today in UTC."""
    if isinstance(as_of, str):
        as_of = as_of_date(as_of)
    if isinstance(as_of, datetime):
        cutoff = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        return cutoff.date(), cutoff
    day = as_of if isinstance(as_of, date) else datetime.now(UTC).date()
    return day, datetime.combine(day, time.max, UTC)


def interval(value: Any) -> Interval | None:
    """Earliest and latest UTC instant of a FHIR instant / dateTime / date / year-month / year.

    None for what is not such a time, and for a time UTC cannot hold (year 1 or 9999 moved across
    a zone): it is reported as unreadable, never clamped to another instant.
    """
    try:
        return _interval(value)
    except (OverflowError, ValueError):
        return None


def _interval(value: Any) -> Interval | None:
    if isinstance(value, datetime):
        t = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return t, t
    if isinstance(value, date):
        start = datetime.combine(value, time(), UTC)
        return start, datetime.combine(value, time.max, UTC)
    leap = _LEAP_SECOND.match(value) if isinstance(value, str) else None
    if leap is not None:  # 23:59:60 lies between 23:59:59 and the next minute
        before = datetime.fromisoformat(f"{leap[1]}:59{leap[2]}").astimezone(UTC)
        return before, before + timedelta(seconds=1)
    match = _PARTIAL_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month = int(match[1]), int(match[2] or 0)
    first, last = (month or 1), (month or 12)
    days = calendar.monthrange(year, last)[1]
    return datetime(year, first, 1, tzinfo=UTC), datetime.combine(date(year, last, days), time.max, UTC)


def hours_before(moment: datetime, hours: float) -> datetime:
    """`moment` less `hours`, or the earliest datetime when that is before year 1."""
    try:
        return moment - timedelta(hours=hours)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def show_time(when: Interval) -> str:
    """An interval as a person reads it: the instant, the day, or the first..last day."""
    start, end = when
    if start == end:
        return start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{start:%Y-%m-%d}" if start.date() == end.date() else f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
