"""The organization views: one tracking recorder, its projection, its tables.

The views hold, per organization, the *access view* row (stored facts,
version, position; ``GET …/access`` reads one by primary key) and the
*directory* line for operators (name, recorded state, trial end — indexed
for the expiry sweep). :meth:`OrganizationViews.put_with_tracking` folds a
batch of events into them and records the batch's position in one
transaction: a crash can neither skip nor double-apply an event. Every
write first takes the views' lock and re-reads the tracked position, so any
number of followers may run: whoever comes second skips what the first
applied.

One class serves every store; a :class:`~application.projections.dialects.Dialect`
says how SQLite and PostgreSQL differ (the ``memory://`` store keeps its
views in an in-memory SQLite database: one implementation of every query).
Tables (``prefix`` is ``views`` live; a rebuild builds a fresh set beside):
``{prefix}_access`` (organization_id, version, position, facts),
``{prefix}_directory`` (organization_id, name, recorded_state,
trial_ends_at, version, position) and ``{prefix}_tracking``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore

from application.projections.dialects import ACCESS_COLUMNS, DIRECTORY_COLUMNS, Dialect
from application.projections.follower import Batch, BatchProjection
from application.projections.rows import DirectoryEntry, OrganizationRow, fold_run, row_from_json
from domain.bundle_state import RecordedAs, recorded_as_showing, recorded_as_turning
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"
#: Organization ids per ``IN (...)`` look-up (SQLite allows 999 parameters at least).
SELECT_CHUNK = 500
#: Organizations whose decoded facts the views remember (oldest dropped first).
FACTS_MEMO_SIZE = 10_000
# Table names are built from the prefix (never from input): keep it an identifier.
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class AccessRead:
    """One access row and, when read with it, the positions from the same snapshot."""

    row: OrganizationRow | None
    #: The log's last position (0 for an empty log, or when not read).
    latest: int = 0
    #: The views' tracked position (0 when nothing applied, or when not read).
    tracked: int = 0


@dataclass
class ViewPage:
    """The rows of both views whose ids lie in ``(after, last]``, read in one short read.

    ``last`` is ``None`` when the page reaches the end of both views.
    """

    position: int
    last: str | None
    access: dict[str, OrganizationRow] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)

    def up_to(self, last: str | None) -> ViewPage:
        """This page cut back to the ids up to ``last`` (``None``: keep everything)."""
        if last is None:
            return self
        return ViewPage(
            self.position,
            last,
            {key: row for key, row in self.access.items() if key <= last},
            {key: entry for key, entry in self.directory.items() if key <= last},
        )


@dataclass
class ViewSnapshot:
    """Every row of both views and their position, read consistently."""

    position: int
    access: dict[str, OrganizationRow] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)


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
        else:
            passed = (
                "trial_ends_at <= {p}"
                if form.trial_end_passed
                else ("(trial_ends_at IS NULL OR trial_ends_at > {p})")
            )
            clauses.append(f"(recorded_state = {p} AND {passed.format(p=p)})")
            params += [form.state, now]
    return f"({' OR '.join(clauses)})", params


class ViewChanges:
    """The changes of one write transaction: read rows, put rows, track a position."""

    def __init__(self, views: OrganizationViews, cursor: Any) -> None:
        self.views = views
        self.cursor = cursor
        #: The tracked position when the transaction started (0: nothing applied).
        self.position = views.tracked_position(cursor)
        self.rows: dict[str, OrganizationRow | None] = {}
        self.dirty: dict[str, OrganizationRow] = {}
        self.tracked: int | None = None

    @property
    def reached(self) -> int:
        """The position the views will have when this transaction commits."""
        return self.tracked or self.position

    def row(self, organization_id: str) -> OrganizationRow | None:
        if organization_id not in self.rows:
            self.preload([organization_id])
        return self.rows[organization_id]

    def preload(self, organization_ids: Iterable[str]) -> None:
        """Read the rows of a whole batch at once (few queries, not one per row)."""
        missing = [i for i in dict.fromkeys(organization_ids) if i not in self.rows]
        if missing:
            self.rows.update(self.views.select_access_rows(self.cursor, missing))

    def put(self, row: OrganizationRow) -> None:
        self.rows[row.organization_id] = self.dirty[row.organization_id] = row

    def track(self, notification_id: int) -> None:
        if notification_id <= self.reached:
            msg = f"position {notification_id} is not after {self.reached}"
            raise IntegrityError(msg)
        self.tracked = notification_id

    def fold(self, events: Batch) -> int:
        """Fold events (in log order) into the rows and track the last; how many were new.

        Events at or before the position are skipped (another follower
        applied them). Each organization's row is read (a batch at once),
        folded through all of its events with their pure ``fold`` and put
        back once; events the views do not show only move the position.
        """
        last = self.reached
        # Keyed by the id's integer (hashed in C; a UUID hashes in Python).
        runs: dict[int, list[OrganizationEvent]] = {}
        ends: dict[int, int] = {}
        applied = 0
        for domain_event, tracking in events:
            if tracking.notification_id <= last:
                continue
            last = tracking.notification_id
            applied += 1
            if isinstance(domain_event, OrganizationEvent):
                key = domain_event.originator_id.int
                runs.setdefault(key, []).append(domain_event)
                ends[key] = last
        if not applied:
            return 0
        ids = {key: str(run[0].originator_id) for key, run in runs.items()}
        self.preload(ids.values())
        for key, run in runs.items():
            self.put(fold_run(self.row(ids[key]), run, ends[key]))
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
        self.datastore, self.dialect, self.prefix = datastore, dialect, prefix
        self.log_table = log_table
        self.memo: dict[str, tuple[str, OrganizationFacts]] = {}
        table = self.qualified
        self.access, self.directory_table = table(f"{prefix}_access"), table(f"{prefix}_directory")
        self.tracking = table(f"{prefix}_tracking")
        p = self.p = dialect.placeholder
        self.select_tracked = (
            f"SELECT notification_id FROM {self.tracking} WHERE application_name = {p}"  # noqa: S608
        )
        self.upsert_tracking = (
            f"INSERT INTO {self.tracking} VALUES ({p}, {p}) ON CONFLICT (application_name) "  # noqa: S608
            "DO UPDATE SET notification_id = excluded.notification_id"
        )
        # One statement, one snapshot: if the views had applied the log's end,
        # the row includes every event of it.
        self.read_access_statement = (
            None
            if log_table is None
            else f"SELECT (SELECT MAX({dialect.log_id}) FROM {table(log_table)}) AS latest, "  # noqa: S608
            f"({self.select_tracked}) AS tracked, a.version, a.position, "
            f"a.{dialect.facts_text} FROM (SELECT 1) AS one "
            f"LEFT JOIN {self.access} AS a ON a.organization_id = {p}"
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

    # -- tables -----------------------------------------------------------------

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for statement in self.dialect.create_statements(self):
                cursor.execute(statement)

    def drop(self) -> None:
        """Remove the views' tables (fresh views made by a rebuild)."""
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
        """Fold ``events`` into the views and track the last, in one transaction."""
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

        Inside, the changes hold ``source``'s rows and position; the caller
        folds in the events after it (the log moved on while ``source`` was
        built). It commits only if the position is at least the one the
        views had when the lock was taken: the position never moves back, so
        a follower that read the log before the swap skips nothing after it.
        ``source`` must be views beside these that nobody else writes.
        """
        if source.datastore is not self.datastore:
            msg = "views are replaced only by views in the same store"
            raise TypeError(msg)
        with self.dialect.write_transaction(self) as cursor:
            live_position = self.tracked_position(cursor)
            # Copied by the database: no row passes through Python under the lock.
            for table, source_table, columns in (
                (self.access, source.access, ACCESS_COLUMNS),
                (self.directory_table, source.directory_table, DIRECTORY_COLUMNS),
            ):
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source_table}"  # noqa: S608
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
        """The log position the views have applied (0: nothing yet)."""
        return self.max_tracking_id(UPSTREAM) or 0

    def decoded(
        self, organization_id: str, text: str, version: int, position: int
    ) -> OrganizationRow:
        """The row from its stored facts' text, the parse reused for the very same text.

        The text is read on every request (so a row repaired at the same
        version is served at once); only the JSON parse is saved.
        """
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
        return DirectoryEntry(
            organization_id=str(found["organization_id"]),
            name=found["name"],
            recorded_state=found["recorded_state"],
            trial_ends_at=self.dialect.py_time(found["trial_ends_at"]),
            version=found["version"],
            position=found["position"],
        )

    def select_access_rows(
        self, cursor: Any, organization_ids: list[str]
    ) -> dict[str, OrganizationRow | None]:
        """Rows of many organizations (``None`` for those without one), few queries."""
        rows: dict[str, OrganizationRow | None] = dict.fromkeys(organization_ids)
        for start in range(0, len(organization_ids), SELECT_CHUNK):
            chunk = organization_ids[start : start + SELECT_CHUNK]
            cursor.execute(
                f"SELECT organization_id, version, position, {self.dialect.facts_text} "  # noqa: S608
                f"FROM {self.access} WHERE organization_id IN ({', '.join([self.p] * len(chunk))})",
                [self.dialect.db_id(organization_id) for organization_id in chunk],
            )
            for found in cursor.fetchall():
                row = self.access_row_from(found)
                rows[row.organization_id] = row
        return rows

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self.dialect.read_transaction(self) as cursor:
            return self.select_access_rows(cursor, [organization_id])[organization_id]

    def read_access(self, organization_id: str) -> AccessRead | None:
        """The row with the log's end and the tracked position, in one statement.

        ``None`` when the log is in another store (the reader then reads the
        three in an order that keeps the guarantee).
        """
        if self.read_access_statement is None:
            return None
        found = self.dialect.read_one(
            self, self.read_access_statement, (UPSTREAM, self.dialect.db_id(organization_id))
        )
        if found["version"] is None:
            row = None
        else:
            row = self.decoded(organization_id, found["facts"], found["version"], found["position"])
        return AccessRead(row, found["latest"] or 0, found["tracked"] or 0)

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Directory lines ordered by id, after the id ``after``, showing ``state`` at ``now``."""
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            clause, params = recorded_as_sql(
                recorded_as_showing(state), self.dialect.db_time(now), self.p
            )
            where.append(clause)
        if after is not None:
            where.append(f"organization_id > {self.p}")
            params.append(self.dialect.db_id(after))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.dialect.read_transaction(self) as cursor:
            cursor.execute(
                f"SELECT {DIRECTORY_COLUMNS} FROM {self.directory_table} "  # noqa: S608
                f"{clause}ORDER BY organization_id LIMIT {self.p}",
                (*params, limit),
            )
            return [self.directory_entry_from(found) for found in cursor.fetchall()]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        """Organizations whose trial's end has turned their state, not yet recorded."""
        clause, params = recorded_as_sql(recorded_as_turning(), self.dialect.db_time(now), self.p)
        with self.dialect.read_transaction(self) as cursor:
            cursor.execute(
                f"SELECT organization_id FROM {self.directory_table} WHERE {clause} "  # noqa: S608
                f"ORDER BY trial_ends_at, organization_id LIMIT {self.p}",
                (*params, limit),
            )
            return [str(found["organization_id"]) for found in cursor.fetchall()]

    def page(self, after: str | None, limit: int) -> ViewPage:
        """Up to ``limit`` rows of each view after the id ``after``, in one short read.

        The page and its position are read consistently, and no transaction
        stays open while its rows are decoded (PostgreSQL ends transactions
        left idle too long). Cut back to the greatest id up to which both
        views were read completely (one that returned fewer rows was read to
        its end).
        """
        where = "" if after is None else f"WHERE organization_id > {self.p} "
        params = (limit,) if after is None else (self.dialect.db_id(after), limit)
        with self.dialect.read_transaction(self) as cursor:
            position = self.tracked_position(cursor)
            found_rows = []
            for columns, table in (
                (f"organization_id, version, position, {self.dialect.facts_text}", self.access),
                (DIRECTORY_COLUMNS, self.directory_table),
            ):
                cursor.execute(
                    f"SELECT {columns} FROM {table} {where}ORDER BY organization_id LIMIT {self.p}",  # noqa: S608
                    params,
                )
                found_rows.append(cursor.fetchall())
        access = [self.access_row_from(found) for found in found_rows[0]]
        directory = [self.directory_entry_from(found) for found in found_rows[1]]
        ends = [rows[-1].organization_id for rows in (access, directory) if len(rows) >= limit]
        return ViewPage(
            position,
            None,
            {row.organization_id: row for row in access},
            {entry.organization_id: entry for entry in directory},
        ).up_to(min(ends) if ends else None)

    def pages(self, limit: int = 1000) -> Iterator[ViewPage]:
        """Every row, a page at a time in id order (pages may be at different positions)."""
        after: str | None = None
        while True:
            page = self.page(after, limit)
            yield page
            if page.last is None:
                return
            after = page.last

    def snapshot(self) -> ViewSnapshot:
        """Every row and their position, read again if the views moved meanwhile (small views)."""
        while True:
            snapshot: ViewSnapshot | None = None
            for page in self.pages():
                snapshot = snapshot or ViewSnapshot(page.position)
                if page.position != snapshot.position:
                    break
                snapshot.access.update(page.access)
                snapshot.directory.update(page.directory)
            else:
                assert snapshot is not None
                return snapshot

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: threading.Event | None = None,
    ) -> None:
        """Block until the views have applied ``notification_id`` (TimeoutError after ``timeout``).

        Polls from 5 ms, growing to 100 ms (the library's starts at 100 ms): a
        read-your-writes request is usually answerable within milliseconds.
        """
        deadline = time.monotonic() + timeout
        interval = 0.005
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
