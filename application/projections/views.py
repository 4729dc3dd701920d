"""The organization views: a tracking recorder that holds two materialised views.

- the *access view*: one row per organization with its stored facts,
  version and position (``GET …/access`` reads one row by primary key);
- the *organization directory* for operators: id, name, recorded state,
  trial end (indexed, for the expiry sweep) and position.

Both are written by one projection, in one transaction together with the
tracking position of the last event applied: a crash can neither skip nor
double-apply an event. Every write transaction first takes the views' write
lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL transaction advisory lock, a
mutex in memory) and then re-reads the tracked position, so any number of
processes may apply the log concurrently: whoever comes second skips what
the first already applied.

This module holds the interface and the in-memory implementation; the SQL
ones are in :mod:`application.projections.sql_views`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

from application.projections.rows import DirectoryEntry, OrganizationRow
from domain.bundle_state import recorded_as_turning
from domain.facts import BundleState

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"

DIRECTORY_STATES = BundleState.ALL


class ViewChanges(ABC):
    """The changes of one write transaction: read rows, put rows, track a position."""

    def __init__(self, position: int) -> None:
        #: The tracked position when the transaction started (0: nothing applied).
        self.position = position
        self._rows: dict[str, OrganizationRow | None] = {}
        self._dirty: dict[str, OrganizationRow] = {}
        self._tracked: int | None = None

    def row(self, organization_id: str) -> OrganizationRow | None:
        if organization_id not in self._rows:
            self._rows[organization_id] = self._load(organization_id)
        return self._rows[organization_id]

    def preload(self, organization_ids: Iterable[str]) -> None:
        """Read the rows of a whole batch at once (one query, not one per row)."""
        missing = [i for i in dict.fromkeys(organization_ids) if i not in self._rows]
        if missing:
            self._rows.update(self._load_many(missing))

    def put(self, row: OrganizationRow) -> None:
        self._rows[row.organization_id] = row
        self._dirty[row.organization_id] = row

    def track(self, notification_id: int) -> None:
        if notification_id <= max(self.position, self._tracked or 0):
            msg = f"position {notification_id} is not after {self.position}"
            raise IntegrityError(msg)
        self._tracked = notification_id

    @property
    def dirty_rows(self) -> list[OrganizationRow]:
        return list(self._dirty.values())

    @property
    def tracked(self) -> int | None:
        return self._tracked

    @abstractmethod
    def _load(self, organization_id: str) -> OrganizationRow | None: ...

    def _load_many(self, organization_ids: list[str]) -> dict[str, OrganizationRow | None]:
        return {
            organization_id: self._load(organization_id) for organization_id in organization_ids
        }


@dataclass
class ViewSnapshot:
    """Every row of both views and their position, read consistently."""

    position: int
    access: dict[str, OrganizationRow] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)


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
            position=self.position,
            last=last,
            access={key: row for key, row in self.access.items() if key <= last},
            directory={key: entry for key, entry in self.directory.items() if key <= last},
        )


def page_end(access_ids: list[str], directory_ids: list[str], limit: int) -> str | None:
    """The greatest id up to which both views were read completely.

    Each view was read in id order, at most ``limit`` rows after the same id;
    a view that returned fewer rows was read to its end.
    """
    ends = [ids[-1] for ids in (access_ids, directory_ids) if len(ids) >= limit]
    return min(ends) if ends else None


class OrganizationViews(TrackingRecorder, ABC):
    """The access view and the organization directory, with their tracking."""

    #: Which views these are (``views`` live; rebuilds use a fresh prefix).
    prefix: str

    # -- writing --------------------------------------------------------------

    @abstractmethod
    def changes(self) -> AbstractContextManager[ViewChanges]:
        """A locked write transaction; rows and tracking are written on exit."""

    @abstractmethod
    def replacing(self, source: OrganizationViews) -> AbstractContextManager[ViewChanges]:
        """A locked write transaction that starts by replacing every row with ``source``'s.

        Inside, the changes hold ``source``'s rows and position; the caller
        applies the events after that position (the log moved on while
        ``source`` was built). On exit the transaction commits only if the
        position is at least the one the views had when the lock was taken:
        the position never moves back, so an applier that read the log
        before the swap cannot skip events after it. ``source`` must be a
        set of views in the same store, that nobody else writes.
        """

    @abstractmethod
    def drop(self) -> None:
        """Remove the views' tables (fresh views made by a rebuild)."""

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.changes() as changes:
            changes.track(tracking.notification_id)

    # -- reading --------------------------------------------------------------

    def position(self) -> int:
        """The log position the views have applied (0: nothing yet)."""
        return self.max_tracking_id(UPSTREAM) or 0

    @abstractmethod
    def access_row(self, organization_id: str) -> OrganizationRow | None: ...

    @abstractmethod
    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Directory lines ordered by id, after the id ``after``, showing ``state`` at ``now``."""

    @abstractmethod
    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        """Organizations whose recorded state is ``trial`` and whose end has passed."""

    @abstractmethod
    def page(self, after: str | None, limit: int) -> ViewPage:
        """Up to ``limit`` rows of each view after the id ``after``, in one short read.

        The page and its position are read consistently, and no transaction
        stays open while its rows are decoded: large views are read a page
        at a time (PostgreSQL ends transactions left idle too long).
        """

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
        """Every row and their position (read again if the views moved meanwhile).

        Holds every row in memory: for tests and small views. Comparing
        large views goes page by page (:mod:`application.projections.rebuild`).
        """
        while True:
            snapshot: ViewSnapshot | None = None
            for page in self.pages():
                if snapshot is None:
                    snapshot = ViewSnapshot(position=page.position)
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

        Polls with a short, growing interval: a read-your-writes request is
        usually answered within milliseconds of the worker applying the event.
        """
        deadline = time.monotonic() + timeout
        interval = 0.005
        while not self.has_tracking_id(application_name, notification_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"views have not applied position {notification_id} within {timeout}s"
                raise TimeoutError(msg)
            if interrupt is not None and interrupt.wait(min(interval, remaining)):
                raise TimeoutError("interrupted")
            if interrupt is None:
                time.sleep(min(interval, remaining))
            interval = min(interval * 2, 0.1)


class _MemoryChanges(ViewChanges):
    def __init__(self, views: MemoryOrganizationViews) -> None:
        super().__init__(views._position)
        self._views = views

    def _load(self, organization_id: str) -> OrganizationRow | None:
        return self._views._rows.get(organization_id)


class MemoryOrganizationViews(OrganizationViews):
    """The views in process memory (the ``memory://`` store, tests)."""

    def __init__(self, prefix: str = "views") -> None:
        self.prefix = prefix
        self._lock = threading.RLock()
        self._rows: dict[str, OrganizationRow] = {}
        self._position = 0

    @contextmanager
    def changes(self) -> Iterator[ViewChanges]:
        with self._lock:
            changes = _MemoryChanges(self)
            yield changes
            for row in changes.dirty_rows:
                self._rows[row.organization_id] = row
            if changes.tracked is not None:
                self._position = changes.tracked

    @contextmanager
    def replacing(self, source: OrganizationViews) -> Iterator[ViewChanges]:
        if not isinstance(source, MemoryOrganizationViews):
            msg = "in-memory views are replaced only by in-memory views"
            raise TypeError(msg)
        with self._lock:
            staged = MemoryOrganizationViews(self.prefix)
            with source._lock:
                staged._rows = dict(source._rows)
                staged._position = source._position
            with staged.changes() as changes:
                yield changes
            if staged._position < self._position:
                msg = f"replacement at {staged._position} is behind the views at {self._position}"
                raise IntegrityError(msg)
            self._rows = staged._rows
            self._position = staged._position

    def drop(self) -> None:
        with self._lock:
            self._rows = {}
            self._position = 0

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            return self._position or None

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self._lock:
            return self._rows.get(organization_id)

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        with self._lock:
            entries = sorted(
                (row.directory_entry() for row in self._rows.values()),
                key=lambda entry: entry.organization_id,
            )
        return [
            entry
            for entry in entries
            if (after is None or entry.organization_id > after)
            and (state is None or entry.effective_state(now) == state)
        ][:limit]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        with self._lock:
            turning = recorded_as_turning()
            due = [
                row
                for row in self._rows.values()
                if any(
                    form.matches(row.facts.bundle_state, row.trial_ends_at, now) for form in turning
                )
            ]
        due.sort(key=lambda row: (row.trial_ends_at, row.organization_id))
        return [row.organization_id for row in due[:limit]]

    def page(self, after: str | None, limit: int) -> ViewPage:
        with self._lock:
            ids = sorted(key for key in self._rows if after is None or key > after)[:limit]
            rows = {key: self._rows[key] for key in ids}
            position = self._position
        return ViewPage(
            position=position,
            last=page_end(ids, ids, limit),
            access=rows,
            directory={key: row.directory_entry() for key, row in rows.items()},
        )
