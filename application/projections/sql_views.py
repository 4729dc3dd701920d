"""The organization views on SQLite and PostgreSQL.

Each class is the library's tracking recorder for its database with the
views' own tables beside it (``prefix`` is ``views`` live; a rebuild builds a
complete fresh set beside them):

- ``{prefix}_access`` — organization_id (primary key), version, position, facts (JSON)
- ``{prefix}_directory`` — organization_id (primary key), name, recorded_state,
  trial_ends_at, version, position; indexed on (recorded_state, organization_id)
  and, for the expiry sweep, on trial_ends_at where recorded_state = 'trial'
- ``{prefix}_tracking`` — application_name (primary key), notification_id

The directory's state filters are generated from ``domain.bundle_state``
(:func:`recorded_as_sql`), never written here.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.projections.rows import (
    DirectoryEntry,
    OrganizationRow,
    row_from_json,
    sortable_time,
)
from application.projections.view_cache import change_payload, channel_name
from application.projections.views import (
    UPSTREAM,
    AccessRead,
    OrganizationViews,
    ViewChanges,
    ViewPage,
)
from domain.bundle_state import RecordedAs, recorded_as_showing, recorded_as_turning
from domain.facts import OrganizationFacts, facts_to_dict

# Table names are built from the prefix (never from input): keep it an identifier.
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Organization ids per ``IN (...)`` look-up (SQLite allows 999 parameters at least).
SELECT_CHUNK = 500
#: Organizations whose decoded facts a process remembers (oldest dropped first).
FACTS_MEMO_SIZE = 10_000

ACCESS_COLUMNS = "organization_id, version, position, facts"
DIRECTORY_COLUMNS = "organization_id, name, recorded_state, trial_ends_at, version, position"


def checked_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        msg = f"view table prefix {prefix!r} must be a short lower-case identifier"
        raise ValueError(msg)
    return prefix


def recorded_as_sql(forms: tuple[RecordedAs, ...], now: Any, p: str) -> tuple[str, list[Any]]:
    """The domain's :class:`RecordedAs` forms as a ``WHERE`` clause on the directory.

    A property test holds this SQL and ``shown_state`` to agree on every
    state and time (tests/application/test_directory_filter_agrees.py).
    """
    clauses: list[str] = []
    params: list[Any] = []
    for form in forms:
        if form.trial_end_passed is None:
            clauses.append(f"recorded_state = {p}")
            params.append(form.state)
        elif form.trial_end_passed:
            clauses.append(f"(recorded_state = {p} AND trial_ends_at <= {p})")
            params += [form.state, now]
        else:
            clauses.append(
                f"(recorded_state = {p} AND (trial_ends_at IS NULL OR trial_ends_at > {p}))"
            )
            params += [form.state, now]
    return f"({' OR '.join(clauses)})", params


class DecodedFacts:
    """Facts decoded from their stored JSON text, reused only for the very same text.

    The text is read on every request (so a row repaired at the same version
    is served at once); only the parse is saved. Not a cache of the view.
    """

    def __init__(self, size: int = FACTS_MEMO_SIZE) -> None:
        self.size = size
        self.entries: dict[str, tuple[str, OrganizationFacts]] = {}

    def row(self, organization_id: str, text: str, version: int, position: int) -> OrganizationRow:
        entry = self.entries.get(organization_id)
        if entry is not None and entry[0] == text:
            return OrganizationRow(organization_id, entry[1], version, position)
        row = row_from_json(organization_id, text, version, position)
        while len(self.entries) >= self.size:
            try:
                self.entries.pop(next(iter(self.entries)))
            except (StopIteration, KeyError, RuntimeError):  # pragma: no cover - raced
                break
        self.entries[organization_id] = (text, row.facts)
        return row


class _SQLChanges(ViewChanges):
    def __init__(self, views: _SQLViews, cursor: Any) -> None:
        self.views = views
        self.cursor = cursor
        super().__init__(views.tracked_position(cursor))

    def load(self, organization_ids: list[str]) -> dict[str, OrganizationRow | None]:
        return self.views.select_access_rows(self.cursor, organization_ids)


class _SQLViews(OrganizationViews):
    """What both dialects share; they differ in placeholders, types, locks and writes."""

    prefix: str
    datastore: Any  # the recorder's: SQLiteDatastore or PostgresDatastore
    placeholder: str
    #: The access view's columns as read (facts as text, decoded after the read).
    access_select = ACCESS_COLUMNS
    #: The one-statement read of a row with the log's end and the tracked position.
    read_access_statement: str | None = None

    def __init__(self, log_table: str | None) -> None:
        self.facts = DecodedFacts()
        self.access, self.directory_table = f"{self.prefix}_access", f"{self.prefix}_directory"
        self.tracking = f"{self.prefix}_tracking"
        p, table = self.placeholder, self.qualified
        self.select_tracked = (
            f"SELECT notification_id FROM {table(self.tracking)} WHERE application_name = {p}"  # noqa: S608
        )
        self.upsert_tracking = (
            f"INSERT INTO {table(self.tracking)} VALUES ({p}, {p}) ON CONFLICT "  # noqa: S608
            "(application_name) DO UPDATE SET notification_id = excluded.notification_id"
        )
        if log_table is not None:
            # One statement, one snapshot: if the views had applied the log's
            # end, the row includes every event of it.
            self.read_access_statement = (
                f"SELECT (SELECT MAX({self.log_id}) FROM {table(log_table)}) AS latest, "  # noqa: S608
                f"({self.select_tracked}) AS tracked, a.version, a.position, "
                f"a.{self.access_select.split(', ')[-1]} FROM (SELECT 1) AS one "
                f"LEFT JOIN {table(self.access)} AS a ON a.organization_id = {p}"
            )

    # -- what a dialect says --------------------------------------------------

    log_id = "rowid"

    def qualified(self, table: str) -> str:
        return table

    def write_transaction(self) -> AbstractContextManager[Any]:
        """A transaction holding the views' write lock."""
        raise NotImplementedError

    def read_transaction(self) -> AbstractContextManager[Any]:
        """A read transaction whose statements all see the same committed state."""
        return self.datastore.transaction(commit=False)  # type: ignore[no-any-return]

    def db_id(self, organization_id: str) -> Any:
        return organization_id

    def db_time(self, moment: datetime | None) -> Any:
        return moment

    def py_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def write_rows(self, cursor: Any, rows: list[OrganizationRow]) -> None:
        # Two executemany per batch, not two execute per row (docs/performance.md).
        p = self.placeholder
        cursor.executemany(
            f"INSERT INTO {self.access} ({ACCESS_COLUMNS}) VALUES ({p}, {p}, {p}, {p}) "  # noqa: S608
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts",
            [(row.organization_id, row.version, row.position, row.facts_json()) for row in rows],
        )
        cursor.executemany(
            f"INSERT INTO {self.directory_table} ({DIRECTORY_COLUMNS}) "  # noqa: S608
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

    def announce(self, cursor: Any, position: int, organization_ids: list[str] | None) -> None:
        """Tell this transaction's readers, at its commit, what it changed (PostgreSQL)."""

    # -- rows -----------------------------------------------------------------

    def tracked_position(self, cursor: Any) -> int:
        cursor.execute(self.select_tracked, (UPSTREAM,))
        found = cursor.fetchone()
        return int(found["notification_id"]) if found else 0

    def access_row_from(self, found: Any) -> OrganizationRow:
        return self.facts.row(
            str(found["organization_id"]), found["facts"], found["version"], found["position"]
        )

    def select_access_rows(
        self, cursor: Any, organization_ids: list[str]
    ) -> dict[str, OrganizationRow | None]:
        """Rows of many organizations (``None`` for those without one), few queries."""
        rows: dict[str, OrganizationRow | None] = dict.fromkeys(organization_ids)
        for start in range(0, len(organization_ids), SELECT_CHUNK):
            chunk = organization_ids[start : start + SELECT_CHUNK]
            cursor.execute(
                f"SELECT {self.access_select} FROM {self.qualified(self.access)} "  # noqa: S608
                f"WHERE organization_id IN ({', '.join([self.placeholder] * len(chunk))})",
                [self.db_id(organization_id) for organization_id in chunk],
            )
            for found in cursor.fetchall():
                row = self.access_row_from(found)
                rows[row.organization_id] = row
        return rows

    def directory_entry_from(self, found: Any) -> DirectoryEntry:
        return DirectoryEntry(
            organization_id=str(found["organization_id"]),
            name=found["name"],
            recorded_state=found["recorded_state"],
            trial_ends_at=self.py_time(found["trial_ends_at"]),
            version=found["version"],
            position=found["position"],
        )

    # -- OrganizationViews ----------------------------------------------------

    @contextmanager
    def changes(self) -> Iterator[ViewChanges]:
        with self.write_transaction() as cursor:
            changes = _SQLChanges(self, cursor)
            yield changes
            self.commit_changes(cursor, changes, list(changes.dirty))

    def commit_changes(self, cursor: Any, changes: ViewChanges, ids: list[str] | None) -> None:
        if changes.dirty:
            self.write_rows(cursor, list(changes.dirty.values()))
        if changes.dirty or changes.tracked is not None or ids is None:
            cursor.execute(self.upsert_tracking, (UPSTREAM, changes.reached))
            self.announce(cursor, changes.reached, ids)

    @contextmanager
    def replacing(self, source: OrganizationViews) -> Iterator[ViewChanges]:
        if not isinstance(source, type(self)) or source.datastore is not self.datastore:
            msg = "views are replaced only by views of the same kind in the same store"
            raise TypeError(msg)
        with self.write_transaction() as cursor:
            live_position = self.tracked_position(cursor)
            # Copied by the database: no row passes through Python under the lock.
            for table, source_table, columns in (
                (self.access, source.access, ACCESS_COLUMNS),
                (self.directory_table, source.directory_table, DIRECTORY_COLUMNS),
            ):
                cursor.execute(f"DELETE FROM {self.qualified(table)}")  # noqa: S608
                cursor.execute(
                    f"INSERT INTO {self.qualified(table)} ({columns}) "  # noqa: S608
                    f"SELECT {columns} FROM {self.qualified(source_table)}"
                )
            cursor.execute(self.upsert_tracking, (UPSTREAM, source.tracked_position(cursor)))
            changes = _SQLChanges(self, cursor)
            yield changes
            if changes.reached < live_position:
                msg = f"replacement at {changes.reached} is behind the views at {live_position}"
                raise IntegrityError(msg)
            self.commit_changes(cursor, changes, None)  # every row may have changed

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self.read_transaction() as cursor:
            return self.select_access_rows(cursor, [organization_id])[organization_id]

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        p = self.placeholder
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            clause, params = recorded_as_sql(recorded_as_showing(state), self.db_time(now), p)
            where.append(clause)
        if after is not None:
            where.append(f"organization_id > {p}")
            params.append(self.db_id(after))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.read_transaction() as cursor:
            cursor.execute(
                f"SELECT {DIRECTORY_COLUMNS} FROM {self.qualified(self.directory_table)} "  # noqa: S608
                f"{clause}ORDER BY organization_id LIMIT {p}",
                (*params, limit),
            )
            return [self.directory_entry_from(found) for found in cursor.fetchall()]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        clause, params = recorded_as_sql(recorded_as_turning(), self.db_time(now), self.placeholder)
        with self.read_transaction() as cursor:
            cursor.execute(
                f"SELECT organization_id FROM {self.qualified(self.directory_table)} "  # noqa: S608
                f"WHERE {clause} ORDER BY trial_ends_at, organization_id "
                f"LIMIT {self.placeholder}",
                (*params, limit),
            )
            return [str(found["organization_id"]) for found in cursor.fetchall()]

    def page(self, after: str | None, limit: int) -> ViewPage:
        p = self.placeholder
        where = "" if after is None else f"WHERE organization_id > {p} "
        params: tuple[Any, ...] = (limit,) if after is None else (self.db_id(after), limit)
        # Fetch in one short, consistent read; decode once it has ended.
        with self.read_transaction() as cursor:
            position = self.tracked_position(cursor)
            cursor.execute(
                f"SELECT {self.access_select} FROM {self.qualified(self.access)} "  # noqa: S608
                f"{where}ORDER BY organization_id LIMIT {p}",
                params,
            )
            access = cursor.fetchall()
            cursor.execute(
                f"SELECT {DIRECTORY_COLUMNS} FROM {self.qualified(self.directory_table)} "  # noqa: S608
                f"{where}ORDER BY organization_id LIMIT {p}",
                params,
            )
            directory = cursor.fetchall()
        return ViewPage.read(
            position,
            [self.access_row_from(found) for found in access],
            [self.directory_entry_from(found) for found in directory],
            limit,
        )

    def answer(self, organization_id: str, found: Any) -> AccessRead:
        """What :meth:`read_access`'s statement found (the LEFT JOIN always answers)."""
        row = (
            None
            if found["version"] is None
            else self.facts.row(
                organization_id, found["facts"], found["version"], found["position"]
            )
        )
        return AccessRead(row, found["latest"] or 0, found["tracked"] or 0)


class SQLiteOrganizationViews(_SQLViews, SQLiteTrackingRecorder):
    placeholder = "?"

    def __init__(
        self, datastore: SQLiteDatastore, prefix: str = "views", log_table: str | None = None
    ) -> None:
        self.prefix = checked_prefix(prefix)  # read by construct_create_table_statements()
        SQLiteTrackingRecorder.__init__(self, datastore)
        _SQLViews.__init__(self, log_table)
        self.select_max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {self.tracking} WHERE application_name=?"  # noqa: S608
        )

    def construct_create_table_statements(self) -> list[str]:
        p = self.prefix
        return [
            f"CREATE TABLE IF NOT EXISTS {p}_access (organization_id TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, position INTEGER NOT NULL, facts TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {p}_directory (organization_id TEXT PRIMARY KEY, "
            "name TEXT NOT NULL, recorded_state TEXT NOT NULL, trial_ends_at TEXT, "
            "version INTEGER NOT NULL, position INTEGER NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {p}_directory_state_idx "
            f"ON {p}_directory (recorded_state, organization_id)",
            f"CREATE INDEX IF NOT EXISTS {p}_directory_trial_end_idx "
            f"ON {p}_directory (trial_ends_at) WHERE recorded_state = 'trial'",
            f"CREATE TABLE IF NOT EXISTS {p}_tracking (application_name TEXT PRIMARY KEY, "
            "notification_id INTEGER) WITHOUT ROWID",
        ]

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for statement in self.create_table_statements:
                cursor.execute(statement)

    def drop(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in (self.access, self.directory_table, self.tracking):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes SQLite's write lock before the first read, so
        # two processes applying the log cannot both read the same position.
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def db_time(self, moment: datetime | None) -> Any:
        return sortable_time(moment)

    def py_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    def read_access(self, organization_id: str) -> AccessRead | None:
        if self.read_access_statement is None:
            return None
        # In autocommit mode a single statement is its own read transaction.
        with (
            self.datastore.get_connection(commit=False) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(self.read_access_statement, (UPSTREAM, organization_id))
            found = cursor.fetchone()
        return self.answer(organization_id, found)


class PostgresOrganizationViews(_SQLViews, PostgresTrackingRecorder):
    placeholder = "%s"
    log_id = "notification_id"
    # jsonb would be parsed while the transaction is open; text is parsed after.
    access_select = "organization_id, version, position, facts::text AS facts"

    def __init__(
        self, datastore: PostgresDatastore, prefix: str = "views", log_table: str | None = None
    ) -> None:
        self.prefix = checked_prefix(prefix)
        PostgresTrackingRecorder.__init__(self, datastore, tracking_table_name=f"{prefix}_tracking")
        _SQLViews.__init__(self, log_table)
        p, table = prefix, self.qualified
        self.sql_create_statements += [
            SQL(statement).format()
            for statement in (
                f"CREATE TABLE IF NOT EXISTS {table(self.access)} (organization_id uuid "
                "PRIMARY KEY, version bigint NOT NULL, position bigint NOT NULL, "
                "facts jsonb NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS {table(self.directory_table)} (organization_id "
                "uuid PRIMARY KEY, name text NOT NULL, recorded_state text NOT NULL, "
                "trial_ends_at timestamptz, version bigint NOT NULL, position bigint NOT NULL)",
                f'CREATE INDEX IF NOT EXISTS "{p}_directory_state_idx" '
                f"ON {table(self.directory_table)} (recorded_state, organization_id)",
                f'CREATE INDEX IF NOT EXISTS "{p}_directory_trial_end_idx" '
                f"ON {table(self.directory_table)} (trial_ends_at) "
                "WHERE recorded_state = 'trial'",
            )
        ]
        # One advisory lock key per set of views (live and each rebuild).
        self.lock_key = zlib.crc32(f"suite-views:{prefix}".encode())
        self.write_rows_statement = (
            "WITH batch AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS batch "  # noqa: S608
            "(organization_id uuid, version bigint, position bigint, facts jsonb)), "
            f"access AS (INSERT INTO {table(self.access)} ({ACCESS_COLUMNS}) "
            f"SELECT {ACCESS_COLUMNS} FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts) "
            f"INSERT INTO {table(self.directory_table)} ({DIRECTORY_COLUMNS}) "
            "SELECT organization_id, facts ->> 'name', facts ->> 'bundle_state', "
            "(facts -> 'trial' ->> 'ends_at')::timestamptz, version, position FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET name = excluded.name, "
            "recorded_state = excluded.recorded_state, "
            "trial_ends_at = excluded.trial_ends_at, version = excluded.version, "
            "position = excluded.position"
        )

    def qualified(self, table: str) -> str:
        return (
            SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(table)).as_string()
        )

    def create_table(self) -> None:
        # Only the views' own statements: the views' tracking table was never
        # multi-row, so the library's migration of older tracking tables is skipped.
        with self.datastore.transaction(commit=True) as cursor:
            for statement in self.sql_create_statements:
                cursor.execute(statement)

    def drop(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in (self.access, self.directory_table, self.tracking):
                cursor.execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            yield cursor

    @contextmanager
    def read_transaction(self) -> Iterator[Any]:
        # READ COMMITTED gives each statement its own snapshot; a page reads three.
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    def db_id(self, organization_id: str) -> Any:
        return UUID(organization_id)

    def write_rows(self, cursor: Any, rows: list[OrganizationRow]) -> None:
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
        cursor.execute(self.write_rows_statement, (json.dumps(batch, separators=(",", ":")),))

    def announce(self, cursor: Any, position: int, organization_ids: list[str] | None) -> None:
        # Sent inside the writing transaction: delivered at its commit, in
        # commit order, never for a rollback. The API's view caches evict on it.
        cursor.execute(
            "SELECT pg_notify(%s, %s)",
            (
                channel_name(self.prefix, self.datastore.schema),
                change_payload(position, organization_ids),
            ),
        )

    def read_access(self, organization_id: str) -> AccessRead | None:
        if self.read_access_statement is None:
            return None
        # One statement on an autocommit connection: no BEGIN/ROLLBACK round trips.
        with self.datastore.get_connection() as connection:
            found = connection.execute(
                self.read_access_statement, (UPSTREAM, UUID(organization_id))
            ).fetchone()
        return self.answer(organization_id, found)
