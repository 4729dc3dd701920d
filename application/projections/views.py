"""The organization views: one tracking recorder, its projection, and the in-memory store.

The views hold, per organization, the *access view* row (stored facts,
version, position; ``GET …/access`` reads one by primary key) and the
*directory* line for operators (id, name, recorded state, trial end —
indexed for the expiry sweep). :meth:`OrganizationViews.put_with_tracking`
folds a batch of events into them and records the batch's position in one
transaction: a crash can neither skip nor double-apply an event. Every
write first takes the views' lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock, a mutex in memory) and re-reads the tracked position, so any
number of followers may run: whoever comes second skips what the first
applied. The SQL stores are in :mod:`application.projections.sql_views`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

from application.projections.follower import Batch, BatchProjection
from application.projections.rows import DirectoryEntry, OrganizationRow, fold_run
from domain.bundle_state import recorded_as_turning
from domain.events import OrganizationEvent

#: Tracking rows are keyed by the name of the application whose log is followed.
UPSTREAM = "SuiteSubscriptions"


@dataclass(frozen=True, slots=True)
class AccessRead:
    """One access row and, when asked, the positions read from the same snapshot."""

    row: OrganizationRow | None
    #: The log's last position (0 for an empty log, or when not asked for).
    latest: int = 0
    #: The views' tracked position (0 when nothing applied, or when not asked for).
    tracked: int = 0


class ViewChanges(ABC):
    """The changes of one write transaction: read rows, put rows, track a position."""

    def __init__(self, position: int) -> None:
        #: The tracked position when the transaction started (0: nothing applied).
        self.position = position
        self.rows: dict[str, OrganizationRow | None] = {}
        self.dirty: dict[str, OrganizationRow] = {}
        self.tracked: int | None = None

    def row(self, organization_id: str) -> OrganizationRow | None:
        if organization_id not in self.rows:
            self.preload([organization_id])
        return self.rows[organization_id]

    def preload(self, organization_ids: Iterable[str]) -> None:
        """Read the rows of a whole batch at once (one query, not one per row)."""
        missing = [i for i in dict.fromkeys(organization_ids) if i not in self.rows]
        if missing:
            self.rows.update(self.load(missing))

    def put(self, row: OrganizationRow) -> None:
        self.rows[row.organization_id] = self.dirty[row.organization_id] = row

    def track(self, notification_id: int) -> None:
        if notification_id <= self.reached:
            msg = f"position {notification_id} is not after {self.reached}"
            raise IntegrityError(msg)
        self.tracked = notification_id

    @property
    def reached(self) -> int:
        """The position the views will have when this transaction commits."""
        return self.tracked or self.position

    @abstractmethod
    def load(self, organization_ids: list[str]) -> dict[str, OrganizationRow | None]:
        """The stored rows of these organizations (``None`` for those without one)."""

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

    @classmethod
    def read(
        cls,
        position: int,
        access: list[OrganizationRow],
        directory: list[DirectoryEntry],
        limit: int,
    ) -> ViewPage:
        """A page from each view's rows read in id order, ``limit`` at most after one id.

        Cut back to the greatest id up to which both were read completely (a
        view that returned fewer than ``limit`` rows was read to its end).
        """
        ends = [rows[-1].organization_id for rows in (access, directory) if len(rows) >= limit]
        return cls(
            position=position,
            last=None,
            access={row.organization_id: row for row in access},
            directory={entry.organization_id: entry for entry in directory},
        ).up_to(min(ends) if ends else None)


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

    def put_with_tracking(self, events: Batch) -> int:
        """Fold ``events`` into the views and track the last, in one transaction."""
        with self.changes() as changes:
            return changes.fold(events)

    @abstractmethod
    def replacing(self, source: OrganizationViews) -> AbstractContextManager[ViewChanges]:
        """A locked write transaction that starts by replacing every row with ``source``'s.

        Inside, the changes hold ``source``'s rows and position; the caller
        folds in the events after it (the log moved on while ``source`` was
        built). It commits only if the position is at least the one the
        views had when the lock was taken: the position never moves back,
        so a follower that read the log before the swap skips nothing after
        it. ``source`` must be views in the same store that nobody else writes.
        """

    @abstractmethod
    def create_table(self) -> None: ...

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

    def read_access(self, organization_id: str) -> AccessRead | None:
        """The row with the log's end and the tracked position, from one snapshot.

        ``None`` when these views cannot see the log in the same statement
        (the reader then reads the three in an order that keeps the guarantee).
        """
        return None

    @abstractmethod
    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Directory lines ordered by id, after the id ``after``, showing ``state`` at ``now``."""

    @abstractmethod
    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        """Organizations whose trial's end has turned their state, not yet recorded."""

    @abstractmethod
    def page(self, after: str | None, limit: int) -> ViewPage:
        """Up to ``limit`` rows of each view after the id ``after``, in one short read.

        The page and its position are read consistently, and no transaction
        stays open while its rows are decoded (PostgreSQL ends transactions
        left idle too long).
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

        For tests and small views; large views are compared page by page.
        """
        while True:
            snapshot: ViewSnapshot | None = None
            for page in self.pages():
                snapshot = snapshot or ViewSnapshot(position=page.position)
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


class _MemoryChanges(ViewChanges):
    def __init__(self, stored: dict[str, OrganizationRow], position: int) -> None:
        super().__init__(position)
        self.stored = stored

    def load(self, organization_ids: list[str]) -> dict[str, OrganizationRow | None]:
        return {key: self.stored.get(key) for key in organization_ids}


class MemoryOrganizationViews(OrganizationViews):
    """The views in process memory (the ``memory://`` store, tests)."""

    def __init__(self, prefix: str = "views") -> None:
        self.prefix = prefix
        self.lock = threading.RLock()
        self.rows: dict[str, OrganizationRow] = {}
        self.tracked = 0

    @contextmanager
    def changes(self) -> Iterator[ViewChanges]:
        with self.lock:
            changes = _MemoryChanges(self.rows, self.tracked)
            yield changes
            self.rows.update(changes.dirty)
            self.tracked = changes.reached

    @contextmanager
    def replacing(self, source: OrganizationViews) -> Iterator[ViewChanges]:
        if not isinstance(source, MemoryOrganizationViews):
            msg = "in-memory views are replaced only by in-memory views"
            raise TypeError(msg)
        with self.lock, source.lock:
            changes = _MemoryChanges(dict(source.rows), source.tracked)
            yield changes
            if changes.reached < self.tracked:
                msg = f"replacement at {changes.reached} is behind the views at {self.tracked}"
                raise IntegrityError(msg)
            self.rows = {**changes.stored, **changes.dirty}
            self.tracked = changes.reached

    def create_table(self) -> None:
        pass

    def drop(self) -> None:
        with self.lock:
            self.rows, self.tracked = {}, 0

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.tracked or None

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        return self.rows.get(organization_id)

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        with self.lock:
            entries = [row.directory_entry() for key, row in sorted(self.rows.items())]
        return [
            entry
            for entry in entries
            if (after is None or entry.organization_id > after)
            and (state is None or entry.effective_state(now) == state)
        ][:limit]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        turning = recorded_as_turning()
        with self.lock:
            due = [
                entry
                for entry in map(OrganizationRow.directory_entry, self.rows.values())
                if any(f.matches(entry.recorded_state, entry.trial_ends_at, now) for f in turning)
            ]
        due.sort(key=lambda entry: (_sortable(entry.trial_ends_at), entry.organization_id))
        return [entry.organization_id for entry in due[:limit]]

    def page(self, after: str | None, limit: int) -> ViewPage:
        with self.lock:
            ids = sorted(key for key in self.rows if after is None or key > after)[:limit]
            rows = [self.rows[key] for key in ids]
            position = self.tracked
        return ViewPage.read(position, rows, [row.directory_entry() for row in rows], limit)


def _sortable(moment: datetime | None) -> Any:
    return (moment is None, moment)
