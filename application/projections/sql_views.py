"""The organization views on SQLite and PostgreSQL.

Each class is the library's tracking recorder for its database, extended
with the two view tables; the tracking table is the views' own
(``{prefix}_tracking``), so a rebuild can build a complete, fresh set of
tables beside the live ones.

Tables (``prefix`` is ``views`` for the live set):

- ``{prefix}_access`` — organization_id (primary key), version, position, facts (JSON)
- ``{prefix}_directory`` — organization_id (primary key), name, recorded_state,
  trial_ends_at, version, position; indexed on (recorded_state, organization_id)
  and, for the expiry sweep, on trial_ends_at where recorded_state = 'trial'
- ``{prefix}_tracking`` — application_name (primary key), notification_id
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import (
    PostgresDatastore,
    PostgresRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from application.projections.rows import (
    DirectoryEntry,
    OrganizationRow,
    row_from_json,
    sortable_time,
)
from application.projections.view_cache import change_payload, channel_name
from application.projections.views import (
    UPSTREAM,
    OrganizationViews,
    ViewChanges,
    ViewPage,
    page_end,
)
from domain.bundle_state import RecordedAs, recorded_as_showing, recorded_as_turning
from domain.facts import facts_to_dict

# Table names are built from the prefix (never from input): keep it an identifier.
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _checked(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        msg = f"view table prefix {prefix!r} must be a short lower-case identifier"
        raise ValueError(msg)
    return prefix


#: Organization ids per ``IN (...)`` look-up (SQLite allows 999 parameters at least).
SELECT_CHUNK = 500


class _SQLChanges(ViewChanges):
    def __init__(self, views: _SQLViews, cursor: Any) -> None:
        self._views = views
        self._cursor = cursor
        super().__init__(views._tracked_position(cursor))

    def _load(self, organization_id: str) -> OrganizationRow | None:
        return self._views._select_access_row(self._cursor, organization_id)

    def _load_many(self, organization_ids: list[str]) -> dict[str, OrganizationRow | None]:
        return self._views._select_access_rows(self._cursor, organization_ids)


class _SQLViews(OrganizationViews):
    """What both SQL dialects share; they differ in placeholders, types and locks."""

    prefix: str
    datastore: Any  # the recorder's: SQLiteDatastore or PostgresDatastore
    _ph: str  # the parameter placeholder

    # -- dialect hooks --------------------------------------------------------

    def _write(self) -> Any:
        """A context manager: a write transaction holding the views' write lock."""
        raise NotImplementedError

    def _read(self) -> Any:
        raise NotImplementedError

    def _read_consistently(self) -> Any:
        """A read transaction whose statements all see the same committed state."""
        return self._read()

    #: The access view's columns as a page reads them (facts as text to decode later).
    _access_select = "organization_id, version, position, facts"

    def _db_id(self, organization_id: str) -> Any:
        return organization_id

    def _db_time(self, moment: datetime | None) -> Any:
        return moment

    def _py_time(self, value: Any) -> datetime | None:
        return value if value is None or isinstance(value, datetime) else None

    def _db_facts(self, row: OrganizationRow) -> Any:
        return row.facts_json()

    def _upsert_tracking(self, cursor: Any, position: int, *, guarded: bool) -> None:
        raise NotImplementedError

    def _announce(self, cursor: Any, position: int, organization_ids: list[str] | None) -> None:
        """Tell this transaction's readers, at its commit, what it changed (PostgreSQL)."""

    # -- statements -----------------------------------------------------------

    @property
    def _access(self) -> str:
        return f"{self.prefix}_access"

    @property
    def _directory(self) -> str:
        return f"{self.prefix}_directory"

    @property
    def _tracking_table(self) -> str:
        return f"{self.prefix}_tracking"

    def _tracked_position(self, cursor: Any) -> int:
        cursor.execute(
            f"SELECT notification_id FROM {self._tracking_table} "  # noqa: S608
            f"WHERE application_name = {self._ph}",
            (UPSTREAM,),
        )
        found = cursor.fetchone()
        return int(_first(found)) if found and _first(found) is not None else 0

    def _select_access_row(self, cursor: Any, organization_id: str) -> OrganizationRow | None:
        cursor.execute(
            f"SELECT organization_id, version, position, facts FROM {self._access} "  # noqa: S608
            f"WHERE organization_id = {self._ph}",
            (self._db_id(organization_id),),
        )
        found = cursor.fetchone()
        return None if found is None else self._access_row_from(found)

    def _select_access_rows(
        self, cursor: Any, organization_ids: list[str]
    ) -> dict[str, OrganizationRow | None]:
        """Rows of many organizations (``None`` for those without one), few queries."""
        rows: dict[str, OrganizationRow | None] = dict.fromkeys(organization_ids)
        for start in range(0, len(organization_ids), SELECT_CHUNK):
            chunk = organization_ids[start : start + SELECT_CHUNK]
            cursor.execute(
                f"SELECT organization_id, version, position, facts FROM {self._access} "  # noqa: S608
                f"WHERE organization_id IN ({', '.join([self._ph] * len(chunk))})",
                [self._db_id(organization_id) for organization_id in chunk],
            )
            for found in cursor.fetchall():
                row = self._access_row_from(found)
                rows[row.organization_id] = row
        return rows

    def _access_row_from(self, found: Any) -> OrganizationRow:
        return row_from_json(
            str(found["organization_id"]), found["facts"], found["version"], found["position"]
        )

    def _directory_entry_from(self, found: Any) -> DirectoryEntry:
        return DirectoryEntry(
            organization_id=str(found["organization_id"]),
            name=found["name"],
            recorded_state=found["recorded_state"],
            trial_ends_at=self._py_time(found["trial_ends_at"]),
            version=found["version"],
            position=found["position"],
        )

    def _write_rows(self, cursor: Any, rows: list[OrganizationRow]) -> None:
        # Two executemany per batch rather than two execute per row: a
        # rebuild writes every organization (docs/performance.md).
        if not rows:
            return
        p = self._ph
        cursor.executemany(
            f"INSERT INTO {self._access} (organization_id, version, position, facts) "  # noqa: S608
            f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (organization_id) DO UPDATE SET "
            "version = excluded.version, position = excluded.position, facts = excluded.facts",
            [
                (self._db_id(row.organization_id), row.version, row.position, self._db_facts(row))
                for row in rows
            ],
        )
        entries = [row.directory_entry() for row in rows]
        cursor.executemany(
            f"INSERT INTO {self._directory} (organization_id, name, recorded_state, "  # noqa: S608
            f"trial_ends_at, version, position) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
            "ON CONFLICT (organization_id) DO UPDATE SET name = excluded.name, "
            "recorded_state = excluded.recorded_state, "
            "trial_ends_at = excluded.trial_ends_at, version = excluded.version, "
            "position = excluded.position",
            [
                (
                    self._db_id(entry.organization_id),
                    entry.name,
                    entry.recorded_state,
                    self._db_time(entry.trial_ends_at),
                    entry.version,
                    entry.position,
                )
                for entry in entries
            ],
        )

    # -- OrganizationViews ----------------------------------------------------

    @contextmanager
    def changes(self) -> Iterator[ViewChanges]:
        with self._write() as cursor:
            changes = _SQLChanges(self, cursor)
            yield changes
            dirty = changes.dirty_rows
            self._write_rows(cursor, dirty)
            if changes.tracked is not None:
                self._upsert_tracking(cursor, changes.tracked, guarded=True)
            if dirty or changes.tracked is not None:
                self._announce(
                    cursor,
                    changes.tracked or changes.position,
                    [row.organization_id for row in dirty],
                )

    @contextmanager
    def replacing(self, source: OrganizationViews) -> Iterator[ViewChanges]:
        if not isinstance(source, type(self)) or source.datastore is not self.datastore:
            msg = "views are replaced only by views of the same kind in the same store"
            raise TypeError(msg)
        with self._write() as cursor:
            live_position = self._tracked_position(cursor)
            # Copied by the database itself: however many rows, no row passes
            # through Python while this transaction (and its lock) is held.
            for table, source_table, columns in (
                (self._access, source._access, _ACCESS_COLUMNS),
                (self._directory, source._directory, _DIRECTORY_COLUMNS),
            ):
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source_table}"  # noqa: S608
                )
            self._upsert_tracking(cursor, source._tracked_position(cursor), guarded=False)
            changes = _SQLChanges(self, cursor)
            yield changes
            self._write_rows(cursor, changes.dirty_rows)
            if changes.tracked is not None:
                self._upsert_tracking(cursor, changes.tracked, guarded=True)
            installed = changes.tracked or changes.position
            if installed < live_position:
                msg = f"replacement at {installed} is behind the views at {live_position}"
                raise IntegrityError(msg)
            self._announce(cursor, installed, None)  # every row may have changed

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self._read() as cursor:
            return self._select_access_row(cursor, organization_id)

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        p = self._ph
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            clause, clause_params = self._recorded_as_sql(recorded_as_showing(state), now)
            where.append(clause)
            params += clause_params
        if after is not None:
            where.append(f"organization_id > {p}")
            params.append(self._db_id(after))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        params.append(limit)
        with self._read() as cursor:
            cursor.execute(
                "SELECT organization_id, name, recorded_state, trial_ends_at, version, position "  # noqa: S608
                f"FROM {self._directory} {clause}ORDER BY organization_id LIMIT {p}",
                tuple(params),
            )
            return [self._directory_entry_from(found) for found in cursor.fetchall()]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        clause, params = self._recorded_as_sql(recorded_as_turning(), now)
        with self._read() as cursor:
            cursor.execute(
                f"SELECT organization_id FROM {self._directory} WHERE {clause} "  # noqa: S608
                f"ORDER BY trial_ends_at, organization_id LIMIT {self._ph}",
                (*params, limit),
            )
            return [str(_first(found)) for found in cursor.fetchall()]

    def _recorded_as_sql(
        self, forms: tuple[RecordedAs, ...], now: datetime
    ) -> tuple[str, list[Any]]:
        """The domain's :class:`RecordedAs` forms as a ``WHERE`` clause on the directory.

        Generated, never written by hand: the rule is ``domain.bundle_state``'s
        (a property test holds this SQL and :func:`shown_state` to agree).
        """
        p = self._ph
        clauses: list[str] = []
        params: list[Any] = []
        for form in forms:
            if form.trial_end_passed is None:
                clauses.append(f"recorded_state = {p}")
                params.append(form.state)
            elif form.trial_end_passed:
                clauses.append(f"(recorded_state = {p} AND trial_ends_at <= {p})")
                params += [form.state, self._db_time(now)]
            else:
                clauses.append(
                    f"(recorded_state = {p} AND (trial_ends_at IS NULL OR trial_ends_at > {p}))"
                )
                params += [form.state, self._db_time(now)]
        return f"({' OR '.join(clauses)})", params

    def page(self, after: str | None, limit: int) -> ViewPage:
        p = self._ph
        where = "" if after is None else f"WHERE organization_id > {p} "
        params: tuple[Any, ...] = (limit,) if after is None else (self._db_id(after), limit)
        # Fetch in one short, consistent read; decode once it has ended.
        with self._read_consistently() as cursor:
            position = self._tracked_position(cursor)
            cursor.execute(
                f"SELECT {self._access_select} FROM {self._access} "  # noqa: S608
                f"{where}ORDER BY organization_id LIMIT {p}",
                params,
            )
            access = cursor.fetchall()
            cursor.execute(
                f"SELECT {_DIRECTORY_COLUMNS} FROM {self._directory} "  # noqa: S608
                f"{where}ORDER BY organization_id LIMIT {p}",
                params,
            )
            directory = cursor.fetchall()
        access_rows = [self._access_row_from(found) for found in access]
        entries = [self._directory_entry_from(found) for found in directory]
        last = page_end(
            [row.organization_id for row in access_rows],
            [entry.organization_id for entry in entries],
            limit,
        )
        return ViewPage(
            position=position,
            last=None,
            access={row.organization_id: row for row in access_rows},
            directory={entry.organization_id: entry for entry in entries},
        ).up_to(last)


#: The columns of each view, in the order both dialects create them.
_ACCESS_COLUMNS = "organization_id, version, position, facts"
_DIRECTORY_COLUMNS = "organization_id, name, recorded_state, trial_ends_at, version, position"


def _first(found: Any) -> Any:
    if isinstance(found, dict):
        return next(iter(found.values()))
    return found[0]


# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------


class SQLiteOrganizationViews(_SQLViews, SQLiteTrackingRecorder):
    _ph = "?"

    def __init__(self, datastore: SQLiteDatastore, prefix: str = "views") -> None:
        self.prefix = _checked(prefix)  # read by construct_create_table_statements()
        super().__init__(datastore)
        self.insert_tracking_statement = (
            f"INSERT INTO {self._tracking_table} VALUES (:application_name, :notification_id) "  # noqa: S608
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {self._tracking_table}.notification_id < :notification_id "
            "RETURNING notification_id"
        )
        self.select_max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {self._tracking_table} "  # noqa: S608
            "WHERE application_name=?"
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
            for table in (self._access, self._directory, self._tracking_table):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    @contextmanager
    def _write(self) -> Iterator[SQLiteCursor]:
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

    def _read(self) -> Any:
        return self.datastore.transaction(commit=False)

    def _db_time(self, moment: datetime | None) -> Any:
        return sortable_time(moment)

    def _py_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    def _upsert_tracking(self, cursor: Any, position: int, *, guarded: bool) -> None:
        if guarded:
            self._insert_tracking(cursor, Tracking(UPSTREAM, position))
            return
        cursor.execute(
            f"INSERT INTO {self._tracking_table} VALUES (?, ?) "  # noqa: S608
            "ON CONFLICT (application_name) "
            "DO UPDATE SET notification_id = excluded.notification_id",
            (UPSTREAM, position),
        )


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


class PostgresOrganizationViews(_SQLViews, PostgresTrackingRecorder):
    _ph = "%s"

    def __init__(self, datastore: PostgresDatastore, prefix: str = "views") -> None:
        self.prefix = _checked(prefix)
        super().__init__(datastore, tracking_table_name=f"{prefix}_tracking")
        schema = Identifier(datastore.schema)

        def ddl(statement: str, *tables: str) -> Composed:
            return SQL(statement).format(schema, *(Identifier(t) for t in tables))

        self.sql_create_statements += [
            ddl(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (organization_id uuid PRIMARY KEY, "
                "version bigint NOT NULL, position bigint NOT NULL, facts jsonb NOT NULL)",
                self._access,
            ),
            ddl(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (organization_id uuid PRIMARY KEY, "
                "name text NOT NULL, recorded_state text NOT NULL, trial_ends_at timestamptz, "
                "version bigint NOT NULL, position bigint NOT NULL)",
                self._directory,
            ),
            ddl(
                "CREATE INDEX IF NOT EXISTS {2} ON {0}.{1} (recorded_state, organization_id)",
                self._directory,
                f"{prefix}_directory_state_idx",
            ),
            ddl(
                "CREATE INDEX IF NOT EXISTS {2} ON {0}.{1} (trial_ends_at) "
                "WHERE recorded_state = 'trial'",
                self._directory,
                f"{prefix}_directory_trial_end_idx",
            ),
        ]
        # One advisory lock key per set of views (live and each rebuild).
        self._lock_key = zlib.crc32(f"suite-views:{prefix}".encode())

    def create_table(self) -> None:
        # The tracking table is the views' own and was never multi-row: skip
        # the library's migration of older tracking tables.
        PostgresRecorder.create_table(self)

    def _create_table(self, curs: Any) -> None:
        PostgresRecorder._create_table(self, curs)

    def drop(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in (self._access, self._directory, self._tracking_table):
                cursor.execute(
                    SQL("DROP TABLE IF EXISTS {0}.{1}").format(
                        Identifier(self.datastore.schema), Identifier(table)
                    )
                )

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield cursor

    def _read(self) -> Any:
        return self.datastore.transaction(commit=False)

    @contextmanager
    def _read_consistently(self) -> Iterator[Any]:
        # READ COMMITTED gives each statement its own snapshot; a page reads
        # its rows and their position in three.
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cursor

    # jsonb would be parsed while the transaction is open; text is parsed after.
    _access_select = "organization_id, version, position, facts::text AS facts"

    def _db_id(self, organization_id: str) -> Any:
        return UUID(organization_id)

    def _write_rows(self, cursor: Any, rows: list[OrganizationRow]) -> None:
        # One statement per batch, whatever its size: the batch travels as
        # one JSON document (encoded once, in C) and the server upserts both
        # views from it, taking the directory's columns from the facts.
        # ``executemany`` sent two INSERTs per row, and psycopg's escaping of
        # text arrays cost more than the JSON (docs/performance.md).
        if not rows:
            return
        batch = json.dumps(
            [
                {
                    "organization_id": row.organization_id,
                    "version": row.version,
                    "position": row.position,
                    "facts": facts_to_dict(row.facts),
                }
                for row in rows
            ],
            separators=(",", ":"),
        )
        cursor.execute(self._write_rows_statement, (batch,))

    @property
    def _write_rows_statement(self) -> Composed:
        return SQL(
            "WITH batch AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS batch "
            "(organization_id uuid, version bigint, position bigint, facts jsonb)), "
            "access AS (INSERT INTO {0}.{1} (organization_id, version, position, facts) "
            "SELECT organization_id, version, position, facts FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts) "
            "INSERT INTO {0}.{2} (organization_id, name, recorded_state, trial_ends_at, "
            "version, position) SELECT organization_id, facts ->> 'name', "
            "facts ->> 'bundle_state', (facts -> 'trial' ->> 'ends_at')::timestamptz, "
            "version, position FROM batch "
            "ON CONFLICT (organization_id) DO UPDATE SET name = excluded.name, "
            "recorded_state = excluded.recorded_state, "
            "trial_ends_at = excluded.trial_ends_at, version = excluded.version, "
            "position = excluded.position"
        ).format(
            Identifier(self.datastore.schema), Identifier(self._access), Identifier(self._directory)
        )

    def _announce(self, cursor: Any, position: int, organization_ids: list[str] | None) -> None:
        # Sent inside the writing transaction: delivered at its commit, in
        # commit order, and never for a transaction that rolled back. The
        # API processes' view caches evict on it (view_cache.py).
        cursor.execute(
            "SELECT pg_notify(%s, %s)",
            (
                channel_name(self.prefix, self.datastore.schema),
                change_payload(position, organization_ids),
            ),
        )

    def _upsert_tracking(self, cursor: Any, position: int, *, guarded: bool) -> None:
        if guarded:
            self._insert_tracking(cursor, Tracking(UPSTREAM, position))
            return
        cursor.execute(
            SQL(
                "INSERT INTO {0}.{1} VALUES (%s, %s) ON CONFLICT (application_name) "
                "DO UPDATE SET notification_id = excluded.notification_id"
            ).format(Identifier(self.datastore.schema), Identifier(self._tracking_table)),
            (UPSTREAM, position),
        )
