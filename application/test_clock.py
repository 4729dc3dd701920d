"""The test clock of SPEC §7: operators move (or freeze) the service's time.

Only enabled with ``SUITE_TEST_CLOCK=1``. Its state lives in a one-row
table of the event store's database and is read on every ``now()``, so all
gunicorn workers (and the CLI) agree on the time without any signalling:

- running: the service's time is the base clock plus ``offset_us``;
- frozen: the service's time is ``frozen_at_us`` and stands still between
  calls, so a scripted story answers the same on every day it is run.

``SUITE_TEST_CLOCK_START`` starts a fresh database's clock frozen at that
instant. Once the log holds an event, time only moves forward (events are
recorded in time order; a clock running backwards would let a later event
happen before an earlier one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from application.sql_tables import SqlTables
from domain.clock import Clock, ensure_utc
from domain.errors import InvalidRequest, StateConflict

log = logging.getLogger(__name__)

TEST_CLOCK_TABLE = (
    "CREATE TABLE IF NOT EXISTS test_clock_state ("
    " id INTEGER PRIMARY KEY,"
    " offset_us BIGINT NOT NULL,"
    " frozen_at_us BIGINT)"
)
#: The clock never leaves this range: dates far beyond it overflow the
#: calendar arithmetic of trials and contracts (a 500 on every route from then
#: on), and no story needs them. Documented in docs/api.md.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_EPOCH = EARLIEST
_MICROSECOND = timedelta(microseconds=1)


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


@dataclass(frozen=True, slots=True)
class TestClockReading:
    """What ``GET /v1/test-clock`` answers."""

    __test__ = False  # not a pytest test class

    now: datetime
    frozen: bool
    #: How far the service's time is from the base (system) clock right now.
    offset: timedelta

    def to_dict(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "frozen": self.frozen,
            "offset_seconds": int(self.offset.total_seconds()),
        }


@dataclass(frozen=True, slots=True)
class _State:
    offset: timedelta
    frozen_at: datetime | None

    def now(self, base_now: datetime) -> datetime:
        return self.frozen_at if self.frozen_at is not None else base_now + self.offset


class TestClockStore:
    """The stored state, changed one transaction at a time."""

    __test__ = False

    def __init__(self, tables: SqlTables) -> None:
        self._tables = tables
        tables.create([TEST_CLOCK_TABLE])

    def start_frozen_at(self, start: datetime) -> None:
        """A fresh clock starts frozen at ``start``; a clock already kept stays as it is."""
        with self._tables.transaction() as cursor:
            # Several processes start at once: the first one's row wins.
            self._tables.execute(
                cursor,
                "INSERT INTO test_clock_state (id, offset_us, frozen_at_us)"
                " VALUES (1, 0, %s) ON CONFLICT (id) DO NOTHING",
                (_to_us(ensure_utc(start)),),
            )

    def state(self) -> _State:
        with self._tables.read() as cursor:
            self._tables.execute(
                cursor, "SELECT offset_us, frozen_at_us FROM test_clock_state WHERE id = 1"
            )
            row = cursor.fetchone()
        return self._decode(row)

    @staticmethod
    def _decode(row: object) -> _State:
        if row is None:
            return _State(timedelta(0), None)
        frozen_at_us = row["frozen_at_us"]  # type: ignore[index]
        return _State(
            timedelta(microseconds=int(row["offset_us"])),  # type: ignore[index]
            None if frozen_at_us is None else _from_us(int(frozen_at_us)),
        )

    def change(self, decide: Callable[[_State], _State]) -> _State:
        """Read, decide and write the state in one transaction.

        The first statement writes, so SQLite takes its write lock before the
        read and PostgreSQL locks the row: two operators moving the clock at
        once are applied one after the other, neither lost.
        """
        with self._tables.transaction() as cursor:
            self._tables.execute(
                cursor,
                "INSERT INTO test_clock_state (id, offset_us, frozen_at_us)"
                " VALUES (1, 0, NULL) ON CONFLICT (id) DO UPDATE SET id = test_clock_state.id",
            )
            self._tables.execute(
                cursor, "SELECT offset_us, frozen_at_us FROM test_clock_state WHERE id = 1"
            )
            decided = decide(self._decode(cursor.fetchone()))
            self._tables.execute(
                cursor,
                "UPDATE test_clock_state SET offset_us = %s, frozen_at_us = %s WHERE id = 1",
                (
                    decided.offset // _MICROSECOND,
                    None if decided.frozen_at is None else _to_us(decided.frozen_at),
                ),
            )
        return decided


class TestClock:
    """The service's clock while the test clock is on.

    The store is attached after construction because it lives in the
    application's own database, which exists only once the application does;
    ``latest_event_at`` (the log's newest event time, None while it is empty)
    tells whether, and how far, time may move backwards.
    """

    __test__ = False

    def __init__(self, base: Clock) -> None:
        self.base = base
        self._store: TestClockStore | None = None
        self._latest_event_at: Callable[[], datetime | None] = lambda: None

    def attach(
        self,
        store: TestClockStore,
        latest_event_at: Callable[[], datetime | None],
        start: datetime | None = None,
    ) -> None:
        """Keep time in ``store``; ``start`` (SUITE_TEST_CLOCK_START) pins a fresh clock."""
        self._store = store
        self._latest_event_at = latest_event_at
        if start is None:
            return
        latest = latest_event_at()
        if latest is not None and start < latest:
            # Pinned there, the next event would happen before ones already recorded.
            log.warning(
                "SUITE_TEST_CLOCK_START %s ignored: the log already holds events up to %s",
                start.isoformat(),
                latest.isoformat(),
            )
            return
        store.start_frozen_at(start)

    def now(self) -> datetime:
        if self._store is None:
            return self.base.now()
        return self._store.state().now(self.base.now())

    def reading(self) -> TestClockReading:
        base_now = self.base.now()
        state = self._attached().state()
        now = state.now(base_now)
        return TestClockReading(now=now, frozen=state.frozen_at is not None, offset=now - base_now)

    def advance(self, delta: timedelta) -> TestClockReading:
        """Move forward by ``delta`` (frozen or not)."""
        if delta < timedelta(0):
            raise _invalid("advance_seconds", "the test clock only moves forward")
        return self._move(lambda now: now + delta, field="advance_seconds")

    def set_to(self, moment: datetime) -> TestClockReading:
        """Jump to ``moment``: any instant while the log is empty, forward only after."""
        moment = ensure_utc(moment)
        return self._move(lambda _now: moment, field="set_to", forward_only=True)

    def freeze(self, frozen: bool) -> TestClockReading:
        """Freeze at the current instant, or let time run on from it."""

        def decide(state: _State) -> _State:
            base_now = self.base.now()
            now = state.now(base_now)
            return _State(now - base_now, now if frozen else None)

        self._attached().change(decide)
        return self.reading()

    def _move(
        self, target: Callable[[datetime], datetime], *, field: str, forward_only: bool = False
    ) -> TestClockReading:
        def decide(state: _State) -> _State:
            base_now = self.base.now()
            now = state.now(base_now)
            try:
                moved = target(now)
            except OverflowError:
                moved = LATEST + timedelta(days=1)
            if not EARLIEST <= moved <= LATEST:
                raise _invalid(
                    field,
                    f"the test clock stays between {EARLIEST.isoformat()} and {LATEST.isoformat()}",
                )
            if forward_only and moved < now and self._latest_event_at() is not None:
                raise StateConflict(
                    "The log already holds events: the test clock only moves forward.",
                    code="test_clock_backwards",
                    details={"now": now.isoformat(), "set_to": moved.isoformat()},
                )
            if state.frozen_at is not None:
                return _State(state.offset, moved)
            return _State(moved - base_now, None)

        self._attached().change(decide)
        return self.reading()

    def _attached(self) -> TestClockStore:
        if self._store is None:
            msg = "the test clock is not attached to a database"
            raise RuntimeError(msg)
        return self._store


def _invalid(field: str, problem: str) -> InvalidRequest:
    return InvalidRequest(
        f"The test clock cannot move so: {problem}.", details={"fields": {field: [problem]}}
    )
