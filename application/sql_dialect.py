"""How the views' SQL differs between the library's two stores (SQLite, PostgreSQL).

Every view that keeps tables beside the events (the organization views in
``application/projections/``, the invoices view in ``application/invoices/``)
writes its statements once and asks its :class:`Dialect` for what differs:
placeholders, column types, how an id and a time are stored, how a write
transaction takes the view's lock and how a read gets one snapshot.
:func:`view_store` picks the store and dialect of an application.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteDatastore, SQLiteFactory
from psycopg.sql import SQL, Identifier

from application.sql_tables import sqlite_write_transaction


class ViewStore(Protocol):
    """What a view's transactions need: its datastore, and its prefix (the lock's name)."""

    @property
    def datastore(self) -> Any: ...

    @property
    def prefix(self) -> str: ...


class Dialect:
    """SQLite's way; :class:`Postgres` overrides what differs."""

    placeholder, log_id, notifies = "?", "rowid", False
    types = ("TEXT", "INTEGER", "TEXT", "TEXT", "TEXT")  # id, integer, text, time, json

    def qualified(self, datastore: Any, table: str) -> str:
        return table

    def json_text(self, column: str) -> str:
        """A JSON column read as its text (decoded by the caller, outside the transaction)."""
        return column

    def db_id(self, organization_id: str) -> Any:
        return organization_id

    def db_time(self, moment: datetime | None) -> Any:
        # Fixed-width UTC text sorts like the times (SQLite has no time type).
        return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")

    def py_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    def write_transaction(self, views: ViewStore) -> AbstractContextManager[Any]:
        # The write lock before the first read, so two processes applying the
        # log cannot both read the same position.
        return sqlite_write_transaction(views.datastore)

    def read_transaction(self, views: ViewStore) -> AbstractContextManager[Any]:
        return views.datastore.transaction(commit=False)  # type: ignore[no-any-return]

    def read_one(self, datastore: Any, statement: str, params: tuple[Any, ...]) -> Any:
        """One row of one statement in autocommit: one statement, one snapshot."""
        with datastore.get_connection(commit=False) as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()

    def add_column(self, cursor: Any, table: str, column: str, kind: str) -> bool:
        """Add a column released after ``table`` was first created (if it lacks it);
        whether it was added."""
        # SQLite has no ADD COLUMN IF NOT EXISTS: look first.
        cursor.execute(f"PRAGMA table_info({table})")
        names = {row[1] for row in cursor.fetchall()}
        if names and column not in names:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            return True
        return False


class SQLite(Dialect):
    pass


class Postgres(Dialect):
    placeholder, log_id, notifies = "%s", "notification_id", True
    types = ("uuid", "bigint", "text", "timestamptz", "jsonb")

    def qualified(self, datastore: Any, table: str) -> str:
        return SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(table)).as_string()

    def json_text(self, column: str) -> str:
        return f"{column}::text AS {column}"  # jsonb would be parsed inside the transaction

    def db_id(self, organization_id: str) -> Any:
        return UUID(organization_id)

    def db_time(self, moment: datetime | None) -> Any:
        return moment

    def py_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    @contextmanager
    def write_transaction(self, views: ViewStore) -> Iterator[Any]:
        key = zlib.crc32(f"suite-views:{views.prefix}".encode())  # per set of views
        with views.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            yield cursor

    @contextmanager
    def read_transaction(self, views: ViewStore) -> Iterator[Any]:
        # READ COMMITTED gives each statement its own snapshot; a page reads three.
        with views.datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    def read_one(self, datastore: Any, statement: str, params: tuple[Any, ...]) -> Any:
        with datastore.get_connection() as connection:  # autocommit: one round trip
            return connection.execute(statement, params).fetchone()

    def add_column(self, cursor: Any, table: str, column: str, kind: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
            "AND NOT attisdropped",
            (table, column),
        )
        if cursor.fetchone() is not None:
            return False
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        return True


class Store(NamedTuple):
    """Where an application's views live: ``log_table`` ``None`` and ``owned`` for
    ``memory://`` (an in-memory SQLite database of the views' own, closed with them)."""

    datastore: Any
    dialect: Dialect
    log_table: str | None
    owned: bool


def view_store(app: Application[Any], name: str) -> Store:
    """The application's own store (so a view's statement can read the log's end too)."""
    factory, log_table = app.factory, getattr(app.recorder, "events_table_name", None)
    if isinstance(factory, SQLiteFactory):
        return Store(factory.datastore, SQLite(), log_table, False)
    if isinstance(factory, PostgresFactory):
        return Store(factory.datastore, Postgres(), log_table, False)
    memory = SQLiteDatastore(f"file:{name}_{uuid4().hex}?mode=memory&cache=shared")
    return Store(memory, SQLite(), None, True)
