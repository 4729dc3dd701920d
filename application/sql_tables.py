"""Small tables that live beside the event store, in the same database.

The payment gateway's charges, idempotency keys and the test clock's offset
are kept in the database that holds the events, so every worker process sees
them and one backup holds everything. :class:`SqlTables` is the narrow port
those stores use: a committed transaction yielding a cursor whose rows can be
read by column name. Statements are written with ``%s`` placeholders (the
PostgreSQL style) and translated for SQLite.

Three adapters:

- :class:`SQLiteTables` — the library's SQLite datastore (WAL, lock timeout;
  each transaction takes the write lock at its start),
- :class:`PostgresTables` — the library's PostgreSQL datastore (psycopg 3),
- :class:`MemoryTables` — a private in-memory SQLite database for ``memory://``,
  so tests run the very same SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder


class SqlTables:
    """The port: a committed transaction, portable statements, idempotent DDL."""

    kind = "abstract"
    placeholder = "%s"

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None:
        if self.placeholder != "%s":
            statement = statement.replace("%s", self.placeholder)
        cursor.execute(statement, tuple(params))

    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (psycopg pipelines them: one round trip)."""
        if not rows:
            return
        if self.placeholder != "%s":
            statement = statement.replace("%s", self.placeholder)
        cursor.executemany(statement, [tuple(row) for row in rows])

    def create(self, statements: Sequence[str]) -> None:
        """Create tables idempotently (every worker process does this at start)."""
        with self.transaction() as cursor:
            for statement in statements:
                self.execute(cursor, statement)

    def transaction(self) -> Any:
        """A context manager: a cursor in a transaction committed on success."""
        raise NotImplementedError

    def read(self) -> Any:
        """A context manager: a cursor for reading only.

        Reads must not take the library's in-process writer lock: a clock
        reading inside someone else's write would otherwise wait for itself.
        """
        raise NotImplementedError


class DatastoreTables(SqlTables):
    """Tables in the database of one of the library's datastores (SQLite, PostgreSQL)."""

    def __init__(self, recorder: Any) -> None:
        self._datastore = recorder.datastore

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._datastore.transaction(commit=True) as cursor:
            yield cursor

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._datastore.transaction(commit=False) as cursor:
            yield cursor


@contextmanager
def sqlite_write_transaction(datastore: Any) -> Iterator[Any]:
    """A committed transaction on the library's SQLite datastore that holds the write
    lock from its ``BEGIN``: ``BEGIN IMMEDIATE`` waits for another process's writer
    (up to the lock timeout). A deferred ``BEGIN`` that reads first cannot upgrade
    once another process has committed since its read: SQLite answers "database is
    locked" at once, with no wait (seen as the payment page's 500 under load, the
    sandbox charge's look-up racing the other worker's webhook writes)."""
    with datastore.get_connection(commit=True) as connection, connection.cursor() as cursor:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


class SQLiteTables(DatastoreTables):
    kind = "sqlite"
    placeholder = "?"

    def transaction(self) -> Any:
        """Every statement of these tables' transactions may read before it writes."""
        return sqlite_write_transaction(self._datastore)


class PostgresTables(DatastoreTables):
    kind = "postgres"


class MemoryTables(SqlTables):
    """For ``memory://``: one private SQLite connection shared under a lock."""

    kind = "memory"
    placeholder = "?"

    def __init__(self) -> None:
        self._connection = sqlite3.connect(
            ":memory:", check_same_thread=False, isolation_level=None
        )
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN")
                try:
                    yield cursor
                except BaseException:
                    self._connection.rollback()
                    raise
                self._connection.commit()
            finally:
                # Closed under the lock: a cursor left to the garbage collector
                # resets its last statement whenever its caller's frame lets go,
                # outside the lock, while another thread may be running that
                # same cached statement ("bad parameter or other API misuse",
                # seen once in CI with three dispatcher threads).
                cursor.close()

    def read(self) -> Any:
        return self.transaction()  # one connection under a re-entrant lock


def tables_for(recorder: ApplicationRecorder) -> SqlTables:
    """The tables adapter that shares the event store's database."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        return SQLiteTables(recorder)
    if isinstance(recorder, POPOApplicationRecorder):
        return MemoryTables()
    return PostgresTables(recorder)
