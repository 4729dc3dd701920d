"""Waiting out a lost database connection: which errors mean it, and how long to wait.

Shared by ``suitesub worker``'s log follower and the webhooks' follower, so
both reconnect the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from eventsourcing import persistence

#: The database connection failed (dropped, refused, the server restarting):
#: worth waiting and reconnecting. The library wraps psycopg's errors in its
#: own; the ``LISTEN`` connection raises psycopg's directly.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


@dataclass
class Backoff:
    """Delays between reconnection attempts: exponential, jittered, bounded.

    The n-th delay is drawn from [c/2, c] where c = min(first × 2ⁿ, maximum)
    ("equal jitter"): workers that lost the same server do not come back in
    step, and none waits longer than ``maximum``.
    """

    first: float = 0.2
    maximum: float = 30.0
    attempts: int = 0
    draw: Callable[[], float] = field(default=random.random, repr=False)

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.first * 2.0 ** min(self.attempts, 32))
        self.attempts += 1
        return ceiling / 2 + ceiling / 2 * self.draw()

    def reset(self) -> None:
        self.attempts = 0


def first_line(error: BaseException) -> str:
    """An error's first line, fit for one log line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
