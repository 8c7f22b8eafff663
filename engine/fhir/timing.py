"""When an Observation holds, as UTC intervals, and which readings a "within N hours" window holds.

A FHIR time is an interval, not an instant: "2024" is a whole year, "2024-05-02" a whole day
(engine/fhir/dates.py). Treating an imprecise time as one instant (its end) anchored the window
after the as-of date and dropped a real fever (issue 9). The rule, conservative for a highest /
lowest reading, is:

- The window ends at the latest reading and spans N hours before it. Imprecision makes the latest
  reading's time an interval too, so the window is anchored at the *earliest* time the latest
  reading can have: the latest moment at which some reading surely had been taken. That moment is
  never after the as-of date (readings that surely begin after it are skipped earlier).
- Every reading that *may* lie in the window (its span reaches the window's start) counts towards
  the highest (lowest) value. Among the values that may be current, the most alarming is taken:
  a reading that may lie outside the window can raise the maximum, never hide one surely inside.
- When the chosen value comes from a reading that may lie outside the window, a note says so.

For precise times the anchor is the latest reading, as before. With date-only readings the window
reaches back N hours from the start of the latest reading's day: for 24 h, any reading of that day
or of the day before it counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.fhir.dates import Interval, hours_before, interval, show_time


@dataclass(frozen=True)
class Timing:
    """`when` orders readings (most recent first); `span` is every instant the value may belong to."""

    when: Interval
    span: Interval


def observation_timing(obs: Any) -> Timing | str:
    """The Observation's timing, or what makes it unusable (a message naming the element).

    effectiveDateTime / effectiveInstant are the time. An effectivePeriod's value was complete
    at its end, so the end orders it (the start when the period is open); its span is the whole
    period. `issued` is a fallback when there is no effective time, and otherwise an upper bound:
    an Observation is made available (issued) only after it was made, so a year-only effective
    time with a precise issued ends at issued.
    """
    period = obs.effectivePeriod
    issued = interval(obs.issued) if obs.issued is not None else None
    if obs.issued is not None and issued is None:
        return "issued cannot be read as a time"
    for name in ("effectiveDateTime", "effectiveInstant"):
        if getattr(obs, name) is not None:
            when = interval(getattr(obs, name))
            if when is None:
                return f"{name} cannot be read as a time"
            return Timing(_bounded(when, issued), _bounded(when, issued))
    if period is not None and (period.start is not None or period.end is not None):
        start = interval(period.start) if period.start is not None else None
        end = interval(period.end) if period.end is not None else None
        for name, given, read in (("start", period.start, start), ("end", period.end, end)):
            if given is not None and read is None:
                return f"effectivePeriod.{name} cannot be read as a time"
        if start is not None and end is not None and start[0] > end[1]:
            return f"effectivePeriod starts ({show_time(start)}) after it ends ({show_time(end)})"
        edge = end or start
        assert edge is not None  # one of them is given
        span = ((start or edge)[0], edge[1])
        return Timing(_bounded(edge, issued), _bounded(span, issued))
    if issued is not None:
        return Timing(issued, issued)
    return "no effective time nor issued: cannot tell how recent it is"


def _bounded(when: Interval, issued: Interval | None) -> Interval:
    """`when` cut at `issued` (made before it was made available), unless issued contradicts it."""
    if issued is None or issued[1] < when[0] or issued[1] >= when[1]:
        return when
    return when[0], issued[1]


@dataclass(frozen=True)
class Window:
    """The readings that may lie within the window, and which of them surely do."""

    start: datetime       # the earliest instant the window can begin
    may: tuple[int, ...]  # indexes of the readings that may lie in the window
    sure: frozenset[int]  # ... and of those that lie in it whatever the imprecise times mean


def window(timings: list[Timing], hours: float, cutoff: datetime) -> Window:
    """The readings of one fact that count for its highest / lowest value within `hours`.

    `cutoff` is the last instant counted (the as-of date): no time after it is considered.
    """
    # The earliest instant the latest reading's value can belong to (a period's start): anchoring any
    # later could push a real fever out of the window because a period ended later (found by
    # tests/test_properties_fhir.py); an earlier anchor only counts more readings, never fewer.
    anchor = min(max(t.span[0] for t in timings), cutoff)
    latest = min(max(t.when[1] for t in timings), cutoff)   # ... and the latest time it can have
    start = hours_before(anchor, hours)
    may = tuple(i for i, t in enumerate(timings) if t.span[1] >= start)
    sure = frozenset(i for i in may if timings[i].when[0] >= hours_before(latest, hours))
    return Window(start, may, sure)
