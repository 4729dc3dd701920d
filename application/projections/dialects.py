"""How SQLite and PostgreSQL differ for the organization views, and nothing else."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from application.projections.rows import OrganizationRow, sortable_time
from application.projections.view_cache import change_payload, channel_name
from domain.facts import facts_to_dict

if TYPE_CHECKING:
    from application.projections.views import OrganizationViews

#: The columns of each view, in the order both dialects create them.
ACCESS_COLUMNS = "organization_id, version, position, facts"
DIRECTORY_COLUMNS = "organization_id, name, recorded_state, trial_ends_at, version, position"


class Dialect:
    placeholder: str
    #: The log table's position column.
    log_id: str
    #: The facts as read: text, decoded once the read has ended.
    facts_text = "facts"
    #: (column types: id, integer, text, time, json)
    types: tuple[str, str, str, str, str]

    def qualified(self, datastore: Any, table: str) -> str:
        return table

    def db_id(self, organization_id: str) -> Any:
        return organization_id

    def db_time(self, moment: datetime | None) -> Any:
        return moment

    def py_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def create_statements(self, views: OrganizationViews) -> list[str]:
        uid, integer, text, moment, facts = self.types
        p, directory = views.prefix, views.directory_table
        return [
            f"CREATE TABLE IF NOT EXISTS {views.access} (organization_id {uid} PRIMARY KEY, "
            f"version {integer} NOT NULL, position {integer} NOT NULL, facts {facts} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {directory} (organization_id {uid} PRIMARY KEY, "
            f"name {text} NOT NULL, recorded_state {text} NOT NULL, trial_ends_at {moment}, "
            f"version {integer} NOT NULL, position {integer} NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{p}_directory_state_idx" '
            f"ON {directory} (recorded_state, organization_id)",
            f'CREATE INDEX IF NOT EXISTS "{p}_directory_trial_end_idx" '
            f"ON {directory} (trial_ends_at) WHERE recorded_state = 'trial'",
            f"CREATE TABLE IF NOT EXISTS {views.tracking} (application_name {text} "
            f"PRIMARY KEY, notification_id {integer})",
        ]

    def write_transaction(self, views: OrganizationViews) -> AbstractContextManager[Any]:
        """A transaction holding the views' write lock."""
        raise NotImplementedError

    def read_transaction(self, views: OrganizationViews) -> AbstractContextManager[Any]:
        """A read transaction whose statements all see the same committed state."""
        return views.datastore.transaction(commit=False)  # type: ignore[no-any-return]

    def read_one(self, views: OrganizationViews, statement: str, params: tuple[Any, ...]) -> Any:
        """One row of one statement, the statement its own (autocommit) transaction."""
        raise NotImplementedError

    def write_rows(
        self, views: OrganizationViews, cursor: Any, rows: list[OrganizationRow]
    ) -> None:
        # Two executemany per batch, not two execute per row (docs/performance.md).
        p = views.p
        cursor.executemany(
            f"INSERT INTO {views.access} ({ACCESS_COLUMNS}) VALUES ({p}, {p}, {p}, {p}) "  # noqa: S608
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts",
            [(row.organization_id, row.version, row.position, row.facts_json()) for row in rows],
        )
        cursor.executemany(
            f"INSERT INTO {views.directory_table} ({DIRECTORY_COLUMNS}) "  # noqa: S608
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (organization_id) DO UPDATE "
            "SET name = excluded.name, recorded_state = excluded.recorded_state, "
            "trial_ends_at = excluded.trial_ends_at, version = excluded.version, "
            "position = excluded.position",
            [
                (
                    e.organization_id,
                    e.name,
                    e.recorded_state,
                    self.db_time(e.trial_ends_at),
                    e.version,
                    e.position,
                )
                for e in (row.directory_entry() for row in rows)
            ],
        )

    def announce(
        self, views: OrganizationViews, cursor: Any, position: int, ids: list[str] | None
    ) -> None:
        """Tell the views' readers, at this transaction's commit, what it changed."""


class SQLite(Dialect):
    placeholder = "?"
    log_id = "rowid"
    types = ("TEXT", "INTEGER", "TEXT", "TEXT", "TEXT")

    @contextmanager
    def write_transaction(self, views: OrganizationViews) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes SQLite's write lock before the first read, so
        # two processes applying the log cannot both read the same position.
        with views.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def read_one(self, views: OrganizationViews, statement: str, params: tuple[Any, ...]) -> Any:
        with (
            views.datastore.get_connection(commit=False) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, params)
            return cursor.fetchone()

    def db_time(self, moment: datetime | None) -> Any:
        return sortable_time(moment)

    def py_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


class Postgres(Dialect):
    placeholder = "%s"
    log_id = "notification_id"
    # jsonb would be parsed while the transaction is open; text is parsed after.
    facts_text = "facts::text AS facts"
    types = ("uuid", "bigint", "text", "timestamptz", "jsonb")

    def qualified(self, datastore: Any, table: str) -> str:
        return SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(table)).as_string()

    def db_id(self, organization_id: str) -> Any:
        return UUID(organization_id)

    @contextmanager
    def write_transaction(self, views: OrganizationViews) -> Iterator[Any]:
        # One advisory lock key per set of views (live and each rebuild).
        key = zlib.crc32(f"suite-views:{views.prefix}".encode())
        with views.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            yield cursor

    @contextmanager
    def read_transaction(self, views: OrganizationViews) -> Iterator[Any]:
        # READ COMMITTED gives each statement its own snapshot; a page reads three.
        with views.datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    def read_one(self, views: OrganizationViews, statement: str, params: tuple[Any, ...]) -> Any:
        # An autocommit connection: one round trip, no BEGIN/ROLLBACK.
        with views.datastore.get_connection() as connection:
            return connection.execute(statement, params).fetchone()

    def write_rows(
        self, views: OrganizationViews, cursor: Any, rows: list[OrganizationRow]
    ) -> None:
        # One statement per batch: the batch travels as one JSON document and
        # the server upserts both views from it, the directory's columns taken
        # from the facts (executemany cost two INSERTs per row; docs/performance.md).
        batch = [
            {
                "organization_id": row.organization_id,
                "version": row.version,
                "position": row.position,
                "facts": facts_to_dict(row.facts),
            }
            for row in rows
        ]
        cursor.execute(
            "WITH batch AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS batch "  # noqa: S608
            "(organization_id uuid, version bigint, position bigint, facts jsonb)), "
            f"access AS (INSERT INTO {views.access} ({ACCESS_COLUMNS}) "
            f"SELECT {ACCESS_COLUMNS} FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts) "
            f"INSERT INTO {views.directory_table} ({DIRECTORY_COLUMNS}) "
            "SELECT organization_id, facts ->> 'name', facts ->> 'bundle_state', "
            "(facts -> 'trial' ->> 'ends_at')::timestamptz, version, position FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET name = excluded.name, "
            "recorded_state = excluded.recorded_state, "
            "trial_ends_at = excluded.trial_ends_at, version = excluded.version, "
            "position = excluded.position",
            (json.dumps(batch, separators=(",", ":")),),
        )

    def announce(
        self, views: OrganizationViews, cursor: Any, position: int, ids: list[str] | None
    ) -> None:
        # Sent inside the writing transaction: delivered at its commit, in
        # commit order, never for a rollback. The API's view caches evict on it.
        channel = channel_name(views.prefix, views.datastore.schema)
        cursor.execute("SELECT pg_notify(%s, %s)", (channel, change_payload(position, ids)))
