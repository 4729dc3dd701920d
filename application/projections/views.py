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
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

from application.projections.rows import DirectoryEntry, OrganizationRow

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"

DIRECTORY_STATES = ("none", "trial", "trial_expired", "cancelled", "active")


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


class OrganizationViews(TrackingRecorder, ABC):
    """The access view and the organization directory, with their tracking."""

    #: Which views these are (``views`` live; rebuilds use a fresh prefix).
    prefix: str

    # -- writing --------------------------------------------------------------

    @abstractmethod
    def changes(self) -> AbstractContextManager[ViewChanges]:
        """A locked write transaction; rows and tracking are written on exit."""

    @abstractmethod
    def replace(self, prepare: Callable[[int], ViewSnapshot]) -> ViewSnapshot:
        """Replace every row and the position, atomically, under the write lock.

        ``prepare`` is called with the views' position once the lock is held
        and must return rows at that position or later: the position never
        moves back, so an applier that read the log before the swap cannot
        skip events after it.
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
    def snapshot(self) -> ViewSnapshot: ...

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

    def replace(self, prepare: Callable[[int], ViewSnapshot]) -> ViewSnapshot:
        with self._lock:
            snapshot = prepare(self._position)
            if snapshot.position < self._position:
                msg = f"replacement at {snapshot.position} is behind the views at {self._position}"
                raise IntegrityError(msg)
            self._rows = dict(snapshot.access)
            self._position = snapshot.position
            return snapshot

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
            due = [
                row
                for row in self._rows.values()
                if row.facts.bundle_state == "trial"
                and row.trial_ends_at is not None
                and row.trial_ends_at <= now
            ]
        due.sort(key=lambda row: (row.trial_ends_at, row.organization_id))
        return [row.organization_id for row in due[:limit]]

    def snapshot(self) -> ViewSnapshot:
        with self._lock:
            return ViewSnapshot(
                position=self._position,
                access=dict(self._rows),
                directory={key: row.directory_entry() for key, row in self._rows.items()},
            )
