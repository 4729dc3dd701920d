"""The organization views (``{prefix}_access``, ``{prefix}_directory``, ``{prefix}_tracking``;
``views`` live): one tracking recorder, its SQL, its projection (docs/architecture.md)."""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier

from application.projections.follower import Batch, BatchProjection
from application.projections.rows import DirectoryEntry, OrganizationRow, fold_run, row_from_json
from application.projections.view_cache import change_payload, channel_name
from domain.bundle_state import RecordedAs, recorded_as_showing, recorded_as_turning
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts, facts_to_dict

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"
SELECT_CHUNK = 500  # ids per ``IN (...)`` (SQLite allows 999 parameters at least)
FACTS_MEMO_SIZE = 10_000  # organizations whose decoded facts are remembered
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # table names are built from it
ACCESS_COLUMNS = "organization_id, version, position, facts"
DIRECTORY_COLUMNS = (
    "organization_id, name, recorded_state, trial_ends_at, version, position, contract_due_at"
)


@dataclass(frozen=True, slots=True)
class AccessRead:
    """One access row and the positions read in the same snapshot (0: not read)."""

    row: OrganizationRow | None
    latest: int = 0  # the log's last position
    tracked: int = 0  # the views' tracked position


@dataclass
class ViewPage:
    """Rows of both views with ids in ``(after, last]`` at ``position`` (``last`` ``None``:
    to the end). :meth:`OrganizationViews.snapshot` is one page of everything."""

    position: int
    last: str | None = None
    access: dict[str, OrganizationRow] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)

    def up_to(self, last: str | None) -> ViewPage:
        if last is None:
            return self
        access = {key: row for key, row in self.access.items() if key <= last}
        directory = {key: line for key, line in self.directory.items() if key <= last}
        return ViewPage(self.position, last, access, directory)


def recorded_as_sql(forms: tuple[RecordedAs, ...], now: Any, p: str) -> tuple[str, list[Any]]:
    """The domain's :class:`RecordedAs` forms as a ``WHERE`` clause on the directory
    (held to agree with ``shown_state`` by tests/application/test_directory_filter_agrees.py)."""
    clauses: list[str] = []
    params: list[Any] = []
    for form in forms:
        if form.trial_end_passed is None:
            clauses.append(f"recorded_state = {p}")
            params.append(form.state)
        else:
            passed = (
                "trial_ends_at <= {p}"
                if form.trial_end_passed
                else "(trial_ends_at IS NULL OR trial_ends_at > {p})"
            )
            clauses.append(f"(recorded_state = {p} AND {passed.format(p=p)})")
            params += [form.state, now]
    return f"({' OR '.join(clauses)})", params


class ViewStore(Protocol):
    """What a view's transactions need: its datastore, and its prefix (the lock's name).

    The organization views and the invoices view (application/invoices/) both are.
    """

    @property
    def datastore(self) -> Any: ...

    @property
    def prefix(self) -> str: ...


class Dialect:
    """SQLite's way; :class:`Postgres` overrides what differs."""

    placeholder, log_id, facts_text = "?", "rowid", "facts"
    types = ("TEXT", "INTEGER", "TEXT", "TEXT", "TEXT")  # id, integer, text, time, json

    def qualified(self, datastore: Any, table: str) -> str:
        return table

    def db_id(self, organization_id: str) -> Any:
        return organization_id

    def db_time(self, moment: datetime | None) -> Any:
        # Fixed-width UTC text sorts like the times (SQLite has no time type).
        return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")

    def py_time(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    @contextmanager
    def write_transaction(self, views: ViewStore) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so two
        # processes applying the log cannot both read the same position.
        with views.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def read_transaction(self, views: ViewStore) -> AbstractContextManager[Any]:
        return views.datastore.transaction(commit=False)  # type: ignore[no-any-return]

    def read_one(self, views: OrganizationViews, statement: str, params: tuple[Any, ...]) -> Any:
        """One row of one statement in autocommit: one statement, one snapshot."""
        with (
            views.datastore.get_connection(commit=False) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, params)
            return cursor.fetchone()

    def write_rows(
        self, views: OrganizationViews, cursor: Any, rows: list[OrganizationRow]
    ) -> None:
        p, db_time = views.p, self.db_time  # two executemany per batch (docs/performance.md)
        cursor.executemany(
            f"INSERT INTO {views.access} ({ACCESS_COLUMNS}) VALUES ({p}, {p}, {p}, {p}) "
            "ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version, "
            "position = excluded.position, facts = excluded.facts",
            [(r.organization_id, r.version, r.position, r.facts_json()) for r in rows],
        )
        cursor.executemany(
            f"INSERT INTO {views.directory_table} ({DIRECTORY_COLUMNS}) VALUES ({p}, {p}, {p}, "
            f"{p}, {p}, {p}, {p}) ON CONFLICT (organization_id) DO UPDATE SET "
            "name = excluded.name, "
            "recorded_state = excluded.recorded_state, trial_ends_at = excluded.trial_ends_at, "
            "version = excluded.version, position = excluded.position, "
            "contract_due_at = excluded.contract_due_at",
            [
                (
                    r.organization_id,
                    r.facts.name,
                    r.facts.bundle_state,
                    db_time(r.trial_ends_at),
                    r.version,
                    r.position,
                    db_time(r.contract_due_at),
                )
                for r in rows
            ],
        )

    def announce(
        self, views: OrganizationViews, cursor: Any, position: int, ids: list[str] | None
    ) -> None:
        """Tell the views' readers, at this transaction's commit, what it changed."""

    def added_columns(self, views: OrganizationViews, cursor: Any) -> list[str]:
        """Columns added after the first release, for a directory created before them
        (their rows get the value when next written, or by ``audit rebuild --apply``)."""
        # SQLite has no ADD COLUMN IF NOT EXISTS: look first.
        cursor.execute(f"PRAGMA table_info({views.directory_table})")
        names = {row[1] for row in cursor.fetchall()}
        if not names or "contract_due_at" in names:
            return []
        return [f"ALTER TABLE {views.directory_table} ADD COLUMN contract_due_at TEXT"]


class SQLite(Dialect):
    pass


class Postgres(Dialect):
    placeholder, log_id = "%s", "notification_id"
    facts_text = "facts::text AS facts"  # jsonb would be parsed inside the transaction
    types = ("uuid", "bigint", "text", "timestamptz", "jsonb")

    def qualified(self, datastore: Any, table: str) -> str:
        return SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(table)).as_string()

    def db_id(self, organization_id: str) -> Any:
        return UUID(organization_id)

    def db_time(self, moment: datetime | None) -> Any:
        return moment

    def py_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def added_columns(self, views: OrganizationViews, cursor: Any) -> list[str]:
        return [
            f"ALTER TABLE {views.directory_table} "
            "ADD COLUMN IF NOT EXISTS contract_due_at timestamptz"
        ]

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

    def read_one(self, views: OrganizationViews, statement: str, params: tuple[Any, ...]) -> Any:
        with views.datastore.get_connection() as connection:  # autocommit: one round trip
            return connection.execute(statement, params).fetchone()

    def write_rows(
        self, views: OrganizationViews, cursor: Any, rows: list[OrganizationRow]
    ) -> None:
        # One statement per batch, the rows as one JSON document; the server
        # takes the directory's columns from the facts (docs/performance.md).
        batch = [
            {
                "organization_id": r.organization_id,
                "version": r.version,
                "position": r.position,
                "facts": facts_to_dict(r.facts),
                # The rule's answer, not SQL's: domain.contract.contract_due_at.
                "contract_due_at": None if (due := r.contract_due_at) is None else due.isoformat(),
            }
            for r in rows
        ]
        update = "version = excluded.version, position = excluded.position"
        cursor.execute(
            "WITH batch AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS batch "
            "(organization_id uuid, version bigint, position bigint, facts jsonb, "
            "contract_due_at timestamptz)), "
            f"access AS (INSERT INTO {views.access} ({ACCESS_COLUMNS}) SELECT {ACCESS_COLUMNS} "
            f"FROM batch ON CONFLICT (organization_id) DO UPDATE SET {update}, "
            f"facts = excluded.facts) INSERT INTO {views.directory_table} ({DIRECTORY_COLUMNS}) "
            "SELECT organization_id, facts ->> 'name', facts ->> 'bundle_state', "
            "(facts -> 'trial' ->> 'ends_at')::timestamptz, version, position, contract_due_at "
            "FROM batch ON CONFLICT (organization_id) DO UPDATE SET name = excluded.name, "
            "recorded_state = excluded.recorded_state, trial_ends_at = excluded.trial_ends_at, "
            f"contract_due_at = excluded.contract_due_at, {update}",
            (json.dumps(batch, separators=(",", ":")),),
        )

    def announce(
        self, views: OrganizationViews, cursor: Any, position: int, ids: list[str] | None
    ) -> None:
        # Inside the writing transaction: delivered at its commit, in commit
        # order, never for a rollback. The API's view caches evict on it.
        channel = channel_name(views.prefix, views.datastore.schema)
        cursor.execute("SELECT pg_notify(%s, %s)", (channel, change_payload(position, ids)))


class ViewChanges:
    """One write transaction's changes: rows read and put, the position tracked."""

    def __init__(self, views: OrganizationViews, cursor: Any) -> None:
        self.views, self.cursor = views, cursor
        self.position = views.tracked_position(cursor)  # when the transaction started
        self.rows: dict[str, OrganizationRow | None] = {}
        self.dirty: dict[str, OrganizationRow] = {}
        self.tracked: int | None = None

    @property
    def reached(self) -> int:
        """The position the views will have when this transaction commits."""
        return self.tracked or self.position

    def row(self, organization_id: str) -> OrganizationRow | None:
        self.preload([organization_id])
        return self.rows[organization_id]

    def preload(self, organization_ids: Iterable[str]) -> None:
        """Read the rows of a whole batch at once (few queries, not one per row)."""
        missing = [i for i in dict.fromkeys(organization_ids) if i not in self.rows]
        if missing:
            self.rows.update(self.views.select_access_rows(self.cursor, missing))

    def put(self, row: OrganizationRow) -> None:
        self.rows[row.organization_id] = self.dirty[row.organization_id] = row

    def track(self, notification_id: int) -> None:  # the position never moves back
        if notification_id <= self.reached:
            msg = f"position {notification_id} is not after {self.reached}"
            raise IntegrityError(msg)
        self.tracked = notification_id

    def fold(self, events: Batch) -> int:
        """Fold events (log order) into the rows, track the last; how many were new. Events at
        or before the position are skipped (another follower applied them); each
        organization's row is read (a batch at once), folded through its run, put once."""
        last, applied = self.reached, 0
        runs: dict[int, list[OrganizationEvent]] = {}  # by the id's int (a UUID hashes in Python)
        ends: dict[int, int] = {}
        for domain_event, tracking in events:
            if tracking.notification_id <= last:
                continue
            last, applied = tracking.notification_id, applied + 1
            if isinstance(domain_event, OrganizationEvent):
                key = domain_event.originator_id.int
                runs.setdefault(key, []).append(domain_event)
                ends[key] = last
        if not applied:
            return 0
        ids = {key: str(run[0].originator_id) for key, run in runs.items()}
        self.preload(ids.values())
        for key, run in runs.items():
            self.put(fold_run(self.rows[ids[key]], run, ends[key]))
        self.track(last)
        return applied


class OrganizationViews(TrackingRecorder):
    """The access view and the organization directory, with their tracking."""

    def __init__(
        self, datastore: Any, dialect: Dialect, prefix: str = "views", log_table: str | None = None
    ) -> None:
        if not _PREFIX.match(prefix):
            msg = f"view table prefix {prefix!r} must be a short lower-case identifier"
            raise ValueError(msg)
        self.datastore, self.dialect = datastore, dialect
        self.prefix, self.log_table = prefix, log_table
        self.memo: dict[str, tuple[str, OrganizationFacts]] = {}
        table = self.qualified
        self.access, self.directory_table = table(f"{prefix}_access"), table(f"{prefix}_directory")
        self.tracking = table(f"{prefix}_tracking")
        p = self.p = dialect.placeholder
        self.select_tracked = (
            f"SELECT notification_id FROM {self.tracking} WHERE application_name = {p}"
        )
        self.upsert_tracking = (
            f"INSERT INTO {self.tracking} VALUES ({p}, {p}) ON CONFLICT (application_name) "
            "DO UPDATE SET notification_id = excluded.notification_id"
        )
        self.select_access = (
            f"SELECT organization_id, version, position, {dialect.facts_text} FROM {self.access}"
        )
        self.select_directory = f"SELECT {DIRECTORY_COLUMNS} FROM {self.directory_table}"
        # One statement, one snapshot: if the views had applied the log's end,
        # the row includes every event of it.
        self.read_access_statement = (
            None
            if log_table is None
            else f"SELECT (SELECT MAX({dialect.log_id}) FROM {table(log_table)}) AS latest, "
            f"({self.select_tracked}) AS tracked, a.version, a.position, a.{dialect.facts_text} "
            f"FROM (SELECT 1) AS one LEFT JOIN {self.access} AS a ON a.organization_id = {p}"
        )

    def close(self) -> None:
        """Close the views' own store (the ``memory://`` store's); a shared one is the app's."""
        if self.log_table is None and isinstance(self.datastore, SQLiteDatastore):
            self.datastore.close()

    def qualified(self, table: str) -> str:
        return self.dialect.qualified(self.datastore, table)

    def beside(self, prefix: str) -> OrganizationViews:
        """A fresh set of views in the same store (a rebuild's), tables created."""
        fresh = OrganizationViews(self.datastore, self.dialect, prefix, self.log_table)
        fresh.create_table()
        return fresh

    def create_table(self) -> None:
        uid, integer, text, moment, facts = self.dialect.types
        key, directory = f"organization_id {uid} PRIMARY KEY", self.directory_table
        numbers = f"version {integer} NOT NULL, position {integer} NOT NULL"
        with self.datastore.transaction(commit=True) as cursor:
            # The first statement writes: SQLite's write lock is taken before the
            # directory's columns are looked at (a read first could not upgrade).
            for statement in (
                f"CREATE TABLE IF NOT EXISTS {self.access} ({key}, {numbers}, "
                f"facts {facts} NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS {directory} ({key}, name {text} NOT NULL, "
                f"recorded_state {text} NOT NULL, trial_ends_at {moment}, {numbers}, "
                f"contract_due_at {moment})",
            ):
                cursor.execute(statement)
            for statement in (
                *self.dialect.added_columns(self, cursor),
                f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_state_idx" '
                f"ON {directory} (recorded_state, organization_id)",
                f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_trial_end_idx" '
                f"ON {directory} (trial_ends_at) WHERE recorded_state = 'trial'",
                f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_contract_due_idx" '
                f"ON {directory} (contract_due_at, organization_id) "
                "WHERE contract_due_at IS NOT NULL",
                f"CREATE TABLE IF NOT EXISTS {self.tracking} (application_name {text} PRIMARY KEY, "
                f"notification_id {integer})",
            ):
                cursor.execute(statement)

    def drop(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in (self.access, self.directory_table, self.tracking):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    # -- writing ----------------------------------------------------------------

    @contextmanager
    def changes(self) -> Iterator[ViewChanges]:
        """A locked write transaction; rows and tracking are written on exit."""
        with self.dialect.write_transaction(self) as cursor:
            changes = ViewChanges(self, cursor)
            yield changes
            self.commit(changes, list(changes.dirty))

    def put_with_tracking(self, events: Batch) -> int:
        with self.changes() as changes:
            return changes.fold(events)

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.changes() as changes:
            changes.track(tracking.notification_id)

    def commit(self, changes: ViewChanges, ids: list[str] | None) -> None:
        if changes.dirty:
            self.dialect.write_rows(self, changes.cursor, list(changes.dirty.values()))
        if changes.dirty or changes.tracked is not None or ids is None:
            changes.cursor.execute(self.upsert_tracking, (UPSTREAM, changes.reached))
            self.dialect.announce(self, changes.cursor, changes.reached, ids)

    @contextmanager
    def replacing(self, source: OrganizationViews) -> Iterator[ViewChanges]:
        """A locked write transaction that starts by replacing every row with ``source``'s.

        The caller folds in the events after ``source``'s position; it commits
        only if the position is not behind the one the views had when the lock
        was taken (a follower that read the log before the swap skips nothing).
        """
        if source.datastore is not self.datastore:
            msg = "views are replaced only by views in the same store"
            raise TypeError(msg)
        with self.dialect.write_transaction(self) as cursor:
            live_position = self.tracked_position(cursor)
            for table, source_table, columns in (  # copied by the database, not Python
                (self.access, source.access, ACCESS_COLUMNS),
                (self.directory_table, source.directory_table, DIRECTORY_COLUMNS),
            ):
                cursor.execute(f"DELETE FROM {table}")
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source_table}"
                )
            cursor.execute(self.upsert_tracking, (UPSTREAM, source.tracked_position(cursor)))
            changes = ViewChanges(self, cursor)
            yield changes
            if changes.reached < live_position:
                msg = f"replacement at {changes.reached} is behind the views at {live_position}"
                raise IntegrityError(msg)
            self.commit(changes, None)  # every row may have changed

    # -- reading ----------------------------------------------------------------

    def tracked_position(self, cursor: Any, application_name: str = UPSTREAM) -> int:
        cursor.execute(self.select_tracked, (application_name,))
        found = cursor.fetchone()
        return int(found["notification_id"]) if found else 0

    def max_tracking_id(self, application_name: str) -> int | None:
        with self.dialect.read_transaction(self) as cursor:
            return self.tracked_position(cursor, application_name) or None

    def position(self) -> int:
        return self.max_tracking_id(UPSTREAM) or 0

    def decoded(
        self, organization_id: str, text: str, version: int, position: int
    ) -> OrganizationRow:
        """The row from its facts' text, read every time (a row repaired at the same
        version is served at once); only the JSON parse is reused for the same text."""
        entry = self.memo.get(organization_id)
        if entry is not None and entry[0] == text:
            return OrganizationRow(organization_id, entry[1], version, position)
        row = row_from_json(organization_id, text, version, position)
        while len(self.memo) >= FACTS_MEMO_SIZE:
            try:
                self.memo.pop(next(iter(self.memo)))
            except (StopIteration, KeyError, RuntimeError):  # pragma: no cover - raced
                break
        self.memo[organization_id] = (text, row.facts)
        return row

    def access_row_from(self, found: Any) -> OrganizationRow:
        key = str(found["organization_id"])
        return self.decoded(key, found["facts"], found["version"], found["position"])

    def directory_entry_from(self, found: Any) -> DirectoryEntry:
        ends, key = self.dialect.py_time(found["trial_ends_at"]), str(found["organization_id"])
        name, state, version = found["name"], found["recorded_state"], found["version"]
        due = self.dialect.py_time(found["contract_due_at"])
        return DirectoryEntry(key, name, state, ends, version, found["position"], due)

    def select_access_rows(self, cursor: Any, ids: list[str]) -> dict[str, OrganizationRow | None]:
        """Rows of many organizations (``None`` for those without one), few queries."""
        rows: dict[str, OrganizationRow | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), SELECT_CHUNK):
            chunk = ids[start : start + SELECT_CHUNK]
            marks = ", ".join([self.p] * len(chunk))
            cursor.execute(
                f"{self.select_access} WHERE organization_id IN ({marks})",
                [self.dialect.db_id(i) for i in chunk],
            )
            for found in cursor.fetchall():
                row = self.access_row_from(found)
                rows[row.organization_id] = row
        return rows

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self.dialect.read_transaction(self) as cursor:
            return self.select_access_rows(cursor, [organization_id])[organization_id]

    def read_access(self, organization_id: str) -> AccessRead | None:
        """The row, the log's end and the tracked position in one statement (``None``
        when the log is in another store: the reader reads them in a safe order)."""
        if self.read_access_statement is None:
            return None
        found = self.dialect.read_one(
            self, self.read_access_statement, (UPSTREAM, self.dialect.db_id(organization_id))
        )
        row = None
        if found["version"] is not None:
            row = self.decoded(organization_id, found["facts"], found["version"], found["position"])
        return AccessRead(row, found["latest"] or 0, found["tracked"] or 0)

    def _directory(self, where: list[str], params: list[Any], order: str, limit: int) -> Any:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.dialect.read_transaction(self) as cursor:
            cursor.execute(
                f"{self.select_directory} {clause}ORDER BY {order} LIMIT {self.p}", (*params, limit)
            )
            return cursor.fetchall()

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Directory lines ordered by id, after the id ``after``, showing ``state`` at ``now``."""
        where: list[str] = []
        params: list[Any] = []
        db_now = self.dialect.db_time(now)
        if state is not None:
            clause, params = recorded_as_sql(recorded_as_showing(state), db_now, self.p)
            where.append(clause)
        if after is not None:
            where.append(f"organization_id > {self.p}")
            params.append(self.dialect.db_id(after))
        found = self._directory(where, params, "organization_id", limit)
        return [self.directory_entry_from(line) for line in found]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        """Organizations whose trial's end has turned their state, not yet recorded."""
        clause, params = recorded_as_sql(recorded_as_turning(), self.dialect.db_time(now), self.p)
        found = self._directory([clause], params, "trial_ends_at, organization_id", limit)
        return [str(line["organization_id"]) for line in found]

    def contracts_due(
        self, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[tuple[str, datetime]]:
        """Contracts whose due moment (``contract_due_at``) has come, oldest first,
        after the ``(due_at, organization_id)`` cursor ``after``."""
        p, db_time = self.p, self.dialect.db_time
        where = ["contract_due_at IS NOT NULL", f"contract_due_at <= {p}"]
        params: list[Any] = [db_time(now)]
        if after is not None:
            where.append(
                f"(contract_due_at > {p} OR (contract_due_at = {p} AND organization_id > {p}))"
            )
            params += [db_time(after[0]), db_time(after[0]), self.dialect.db_id(after[1])]
        found = self._directory(where, params, "contract_due_at, organization_id", limit)
        due: list[tuple[str, datetime]] = []
        for line in found:
            moment = self.dialect.py_time(line["contract_due_at"])
            assert moment is not None
            due.append((str(line["organization_id"]), moment))
        return due

    def page(self, after: str | None, limit: int) -> ViewPage:
        """Up to ``limit`` rows of each view after the id ``after`` and their position, in one
        short read (no transaction idles while rows are decoded: PostgreSQL ends those),
        cut back to the greatest id up to which both views were read completely."""
        where = "" if after is None else f"WHERE organization_id > {self.p} "
        params = (limit,) if after is None else (self.dialect.db_id(after), limit)
        found = []
        with self.dialect.read_transaction(self) as cursor:
            position = self.tracked_position(cursor)
            for select in (self.select_access, self.select_directory):
                cursor.execute(f"{select} {where}ORDER BY organization_id LIMIT {self.p}", params)
                found.append(cursor.fetchall())
        access = [self.access_row_from(row) for row in found[0]]
        directory = [self.directory_entry_from(line) for line in found[1]]
        ends = [rows[-1].organization_id for rows in (access, directory) if len(rows) >= limit]
        rows, lines = (
            {r.organization_id: r for r in access},
            {e.organization_id: e for e in directory},
        )
        return ViewPage(position, None, rows, lines).up_to(min(ends) if ends else None)

    def snapshot(self, page_size: int = 1000) -> ViewPage:
        """Every row at one position, read again if the views moved meanwhile (small views)."""
        while True:
            whole = self.page(None, page_size)
            while whole.last is not None:
                page = self.page(whole.last, page_size)
                if page.position != whole.position:
                    break
                whole.access.update(page.access)
                whole.directory.update(page.directory)
                whole.last = page.last
            if whole.last is None:
                return whole

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: threading.Event | None = None,
    ) -> None:
        """The library's wait, polling from 5 ms (not 100 ms) up to 100 ms: a
        read-your-writes request is usually answerable within milliseconds."""
        deadline, interval = time.monotonic() + timeout, 0.005
        while not self.has_tracking_id(application_name, notification_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"views have not applied position {notification_id} within {timeout}s"
                raise TimeoutError(msg)
            if (interrupt or threading.Event()).wait(min(interval, remaining)):
                raise TimeoutError("interrupted")
            interval = min(interval * 2, 0.1)


class OrganizationViewsProjection(BatchProjection[OrganizationViews]):
    """Folds organization events into the access view and the directory."""

    name = "organization_views"

    def process_batch(self, events: Batch) -> int:
        return self.view.put_with_tracking(events)
