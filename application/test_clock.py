"""The test clock of SPEC §7: an operator moves the service's time forward.

Only enabled with ``SUITE_TEST_CLOCK=1``. The offset lives in a one-row
table of the event store's database and is read on every ``now()``, so all
gunicorn workers (and the CLI) agree on the time without any signalling.
Time only moves forward, as billing platforms' test clocks do.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from application.sql_tables import SqlTables
from domain.clock import Clock
from domain.errors import InvalidRequest

TEST_CLOCK_TABLE = (
    "CREATE TABLE IF NOT EXISTS test_clock ("
    " id INTEGER PRIMARY KEY,"
    " offset_seconds BIGINT NOT NULL)"
)
#: Far enough for any story (ten years), small enough that datetimes stay valid.
MAX_ADVANCE_SECONDS = 10 * 366 * 24 * 3600


class TestClockOffset:
    """The stored offset: how far the service's time is ahead of the real clock."""

    __test__ = False  # not a pytest test class

    def __init__(self, tables: SqlTables) -> None:
        self._tables = tables
        tables.create([TEST_CLOCK_TABLE])

    def offset(self) -> timedelta:
        with self._tables.read() as cursor:
            self._tables.execute(cursor, "SELECT offset_seconds FROM test_clock WHERE id = 1")
            row = cursor.fetchone()
        return timedelta(seconds=0 if row is None else int(row["offset_seconds"]))

    def advance(self, seconds: int) -> None:
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
            raise InvalidRequest(
                "The test clock only moves forward, by at most ten years at a time.",
                details={"fields": {"advance_seconds": [f"must be 0..{MAX_ADVANCE_SECONDS}"]}},
            )
        with self._tables.transaction() as cursor:
            # One statement, so two operators advancing at once both count.
            self._tables.execute(
                cursor,
                "INSERT INTO test_clock (id, offset_seconds) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE"
                " SET offset_seconds = test_clock.offset_seconds + excluded.offset_seconds",
                (seconds,),
            )


class TestClock:
    """A clock running at the base clock's pace, shifted by the stored offset.

    The offset store is attached after construction because it lives in the
    application's own database, which exists only once the application does.
    """

    __test__ = False

    def __init__(self, base: Clock) -> None:
        self.base = base
        self._offset: TestClockOffset | None = None

    def attach(self, offset: TestClockOffset) -> None:
        self._offset = offset

    def offset(self) -> timedelta:
        return timedelta(0) if self._offset is None else self._offset.offset()

    def now(self) -> datetime:
        return self.base.now() + self.offset()

    def advance(self, seconds: int) -> datetime:
        if self._offset is None:
            msg = "the test clock is not attached to a database"
            raise RuntimeError(msg)
        self._offset.advance(seconds)
        return self.now()
