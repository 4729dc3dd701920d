"""Time as a dependency.

The domain never asks the operating system what time it is; it is given a
:class:`Clock`. Tests and demos use :class:`ManualClock` to run a whole
30-day story in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can say what time it is, as an aware UTC datetime."""

    def now(self) -> datetime: ...


def ensure_utc(moment: datetime) -> datetime:
    """Refuse naive datetimes and normalise aware ones to UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"naive datetime {moment!r}: times must be timezone-aware"
        raise ValueError(msg)
    return moment.astimezone(UTC)


class ManualClock:
    """A clock that only moves when told to (tests, demos, the test clock)."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            msg = "a clock only moves forward"
            raise ValueError(msg)
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = ensure_utc(moment)
