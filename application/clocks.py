"""Clock adapters: the system clock, and a clock shifted by a stored offset."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from domain.clock import Clock


class SystemClock:
    """The real time, in UTC. The only place the service reads the wall clock."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)


class OffsetClock:
    """Another clock moved forward by an offset read on every call.

    The offset comes from a callable (the test clock keeps it in the database
    so that every worker process sees the same time).
    """

    def __init__(self, base: Clock, offset: Callable[[], timedelta]) -> None:
        self._base = base
        self._offset = offset

    def now(self) -> datetime:
        return self._base.now() + self._offset()
