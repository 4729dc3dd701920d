"""The one shape of a view (docs/architecture.md): a tracking recorder with its tables,
a locked write transaction that puts rows *with* the batch's position, and pages
read at one position (a rebuild compares them).

:class:`TrackedView` holds what every view shares (its tracking table, the lock,
the swap of a rebuild); a view says only what its rows are: its tables
(:meth:`TrackedView.statements`, :attr:`TrackedView.copied`) and its
:class:`Changes` (what a run of new events puts). The organization views
(``views.py``) and the invoices view (``application/invoices/``) are two.
"""

from __future__ import annotations

import re
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.projection import Projection

from application.sql_dialect import Dialect
from domain.events import OrganizationEvent

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # table names are built from it
#: A batch: each decoded event (``None``: passed over) with its place in the log.
Batch = Sequence[tuple[Any, Tracking]]


def upsert(table: str, columns: str, rows: str) -> str:
    """An ``INSERT`` of ``rows`` into ``columns`` that updates the row with the same key
    (the first column) in place; ``rows`` is a ``SELECT`` or a placeholder (one a column)."""
    names = [name.strip() for name in columns.split(",")]
    if not rows.startswith("SELECT"):
        rows = f"VALUES ({', '.join([rows] * len(names))})"
    update = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    return f"INSERT INTO {table} ({columns}) {rows} ON CONFLICT ({names[0]}) DO UPDATE SET {update}"


class Changes:
    """One write transaction's changes: the position it started at and the one tracked."""

    def __init__(self, view: TrackedView[Any], cursor: Any) -> None:
        self.view, self.cursor = view, cursor
        self.position = view.tracked_position(cursor)  # when the transaction started
        self.tracked: int | None = None

    @property
    def reached(self) -> int:
        """The position the view will have when this transaction commits."""
        return self.tracked or self.position

    def track(self, notification_id: int) -> None:  # the position never moves back
        if notification_id <= self.reached:
            msg = f"position {notification_id} is not after {self.reached}"
            raise IntegrityError(msg)
        self.tracked = notification_id

    def fold(self, events: Batch) -> int:
        """Put what ``events`` (log order) change and track the last; how many were new.
        Events at or before the position are skipped (another follower applied them)."""
        last, applied = self.reached, 0
        new: list[tuple[OrganizationEvent, int]] = []
        for domain_event, tracking in events:  # one pass: this runs for every event
            if tracking.notification_id > last:
                last, applied = tracking.notification_id, applied + 1
                if isinstance(domain_event, OrganizationEvent):
                    new.append((domain_event, last))
        if not applied:
            return 0
        self.take(new)
        self.track(last)
        return applied

    @abstractmethod
    def take(self, events: list[tuple[OrganizationEvent, int]]) -> None:
        """Take the new events (each with its position) into the rows to write."""

    @abstractmethod
    def write(self) -> list[str]:
        """Write the rows taken (once, before the tracking, in the transaction); the
        organizations whose rows were written."""


class Page(Protocol):
    """Rows with keys in ``(after, last]`` read at ``position`` (``last`` ``None``: to the end)."""

    position: int
    last: str | None

    def up_to(self, last: str | None) -> Self: ...

    def compared(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """``(key, view) → (organization id, fields)``: what a rebuild compares."""
        ...


TChanges = TypeVar("TChanges", bound=Changes)


class TrackedView(TrackingRecorder, Generic[TChanges]):
    """A view's tables beside the log with its tracking, written under the view's lock."""

    #: The view's tables (by suffix) and the columns a rebuild's swap copies.
    copied: ClassVar[dict[str, str]]

    def __init__(
        self, datastore: Any, dialect: Dialect, prefix: str, *, owns_store: bool = False
    ) -> None:
        if not _PREFIX.match(prefix):
            msg = f"view table prefix {prefix!r} must be a short lower-case identifier"
            raise ValueError(msg)
        self.datastore, self.dialect, self.prefix = datastore, dialect, prefix
        #: The view's own store (``memory://``), closed with it; else the app's.
        self.owns_store = owns_store
        self.tracking = self.table("tracking")
        p = self.p = dialect.placeholder
        self.select_tracked = (
            f"SELECT notification_id FROM {self.tracking} WHERE application_name = {p}"
        )
        self.upsert_tracking = upsert(self.tracking, "application_name, notification_id", p)

    def table(self, suffix: str) -> str:
        return self.dialect.qualified(self.datastore, f"{self.prefix}_{suffix}")

    @abstractmethod
    def with_prefix(self, prefix: str) -> Self:
        """The same view under another prefix, in the same store."""

    @abstractmethod
    def new_changes(self, cursor: Any) -> TChanges:
        """The :class:`Changes` of one write transaction."""

    @abstractmethod
    def statements(self, cursor: Any) -> list[str]:
        """The view's DDL (idempotent), run after the first table exists."""

    def close(self) -> None:
        """Close the view's own store (the ``memory://`` store's); a shared one is the app's."""
        if self.owns_store:
            self.datastore.close()

    def beside(self, prefix: str) -> Self:
        """A fresh view in the same store (a rebuild's), tables created."""
        fresh = self.with_prefix(prefix)
        fresh.create_table()
        return fresh

    def create_table(self) -> None:
        _, integer, text, _, _ = self.dialect.types
        with self.datastore.transaction(commit=True) as cursor:
            # The first statement writes: SQLite's write lock is taken before
            # any table's columns are looked at (a read first could not upgrade).
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.tracking} (application_name {text} "
                f"PRIMARY KEY, notification_id {integer})"
            )
            for statement in self.statements(cursor):
                cursor.execute(statement)

    def drop(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in (*map(self.table, self.copied), self.tracking):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    # -- writing ----------------------------------------------------------------

    @contextmanager
    def changes(self) -> Iterator[TChanges]:
        """A locked write transaction; rows and tracking are written on exit."""
        with self.dialect.write_transaction(self) as cursor:
            changes = self.new_changes(cursor)
            yield changes
            self.commit(changes)

    def put_with_tracking(self, events: Batch) -> int:
        """Put what ``events`` change and track the last, in one transaction."""
        with self.changes() as changes:
            return changes.fold(events)

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.changes() as changes:
            changes.track(tracking.notification_id)

    def commit(self, changes: TChanges, *, replaced: bool = False) -> None:
        ids = changes.write()
        if ids or changes.tracked is not None or replaced:
            changes.cursor.execute(self.upsert_tracking, (UPSTREAM, changes.reached))
            self.announce(changes.cursor, changes.reached, None if replaced else ids)

    def announce(self, cursor: Any, position: int, ids: list[str] | None) -> None:
        """Tell the view's readers, at this transaction's commit, what it changed
        (``None``: maybe every row); nothing by default."""

    @contextmanager
    def replacing(self, source: Self) -> Iterator[TChanges]:
        """A locked write transaction that starts by replacing every row with ``source``'s.

        The caller folds in the events after ``source``'s position; it commits
        only if the position is not behind the one the view had when the lock
        was taken (a follower that read the log before the swap skips nothing).
        """
        if source.datastore is not self.datastore:
            msg = "views are replaced only by views in the same store"
            raise TypeError(msg)
        with self.dialect.write_transaction(self) as cursor:
            live_position = self.tracked_position(cursor)
            for suffix, columns in self.copied.items():  # copied by the database, not Python
                table = self.table(suffix)
                cursor.execute(f"DELETE FROM {table}")
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source.table(suffix)}"
                )
            cursor.execute(self.upsert_tracking, (UPSTREAM, source.tracked_position(cursor)))
            changes = self.new_changes(cursor)
            yield changes
            if changes.reached < live_position:
                msg = f"replacement at {changes.reached} is behind the views at {live_position}"
                raise IntegrityError(msg)
            self.commit(changes, replaced=True)  # every row may have changed

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

    @abstractmethod
    def page(self, after: str | None, limit: int) -> Page:
        """Up to ``limit`` rows after the key ``after`` and the view's position, in one read."""

    def pages(self, limit: int = 1000) -> Iterator[Page]:
        """Every row, a page at a time (each page at its own position)."""
        after: str | None = None
        while True:
            page = self.page(after, limit)
            yield page
            if page.last is None:
                return
            after = page.last

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


TView = TypeVar("TView", bound=TrackedView[Any])


class ViewProjection(Projection[TView]):
    """Any view's projection: a whole batch is put with its tracking by the view itself,
    in one transaction; how many events were new."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])

    def process_batch(self, events: Batch) -> int:
        return self.view.put_with_tracking(events)
