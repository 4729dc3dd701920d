"""The projection that keeps the organization views, and the loop that follows the log.

:class:`OrganizationViewsProjection` is an ``eventsourcing.projection.Projection``:
each event is folded into its organization's row with the event's own pure
``fold`` (no aggregate is loaded), and the rows and the tracking position are
written in one transaction.

:class:`ViewFollower` feeds it from the notification log, a batch at a time,
starting after the views' tracked position. SQLite has no ``subscribe()``,
so following is polling; on PostgreSQL :class:`LogListener` wakes the
follower on the events table's ``NOTIFY``. Any number of followers may run
at once (API workers catching up before a read, ``suitesub worker``
processes): the views' write lock and the re-read of the tracked position
inside it make the second one skip what the first applied.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.projection import Projection
from psycopg.sql import SQL, Identifier

from application.projections.rows import fold_run
from application.projections.views import OrganizationViews, ViewChanges
from domain.events import OrganizationEvent

DEFAULT_BATCH_SIZE = 500

#: Called with (views' position, target position) after each applied batch.
Progress = Callable[[int, int], None]


class OrganizationViewsProjection(Projection[OrganizationViews]):
    """Folds organization events into the access view and the directory."""

    name = "organization_views"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_events([(domain_event, tracking)])

    def process_events(self, events: Sequence[tuple[Any, Tracking]]) -> int:
        """Apply events in one transaction; return how many were new to the views."""
        with self.view.changes() as changes:
            return self.apply(changes, [(event, t.notification_id) for event, t in events])

    def apply(self, changes: ViewChanges, events: Sequence[tuple[Any, int]]) -> int:
        """Apply (event, log position) pairs within an open transaction, in log order.

        Returns how many were new to the views. Events are grouped by
        organization first: a batch holds runs of the same organization's
        events, and each organization's row is read, folded through all of
        its events and put back once per batch; the position is tracked
        once, at the batch's last event. Events the views do not show only
        move the tracked position.
        """
        applied = 0
        last = max(changes.position, changes.tracked or 0)
        # Keyed by the id's integer (hashed in C; a UUID hashes in Python).
        runs: dict[int, list[OrganizationEvent]] = {}
        ends: dict[int, int] = {}  # the log position of each run's last event
        for domain_event, position in events:
            if position <= last:
                continue  # another follower applied it first
            last = position
            applied += 1
            if isinstance(domain_event, OrganizationEvent):
                key = domain_event.originator_id.int
                run = runs.get(key)
                if run is None:
                    runs[key] = run = []
                run.append(domain_event)
                ends[key] = position
        if not applied:
            return 0
        # One str() per organization, not per event.
        organization_ids = {key: str(run[0].originator_id) for key, run in runs.items()}
        changes.preload(organization_ids.values())
        for key, run in runs.items():
            changes.put(fold_run(changes.row(organization_ids[key]), run, ends[key]))
        changes.track(last)
        return applied


class ViewFollower:
    """Applies the application's notification log to a set of views."""

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.app = app
        self.views = views
        self.projection = OrganizationViewsProjection(view=views)
        self.batch_size = batch_size

    def latest_position(self) -> int:
        """The log's last position (0 for an empty log)."""
        return self.app.recorder.max_notification_id() or 0

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Apply every notification after the views' position (up to ``until``).

        Returns the views' position afterwards.
        """
        position = self.views.position()
        while True:
            if until is not None and position >= until:
                return position
            notifications = self.app.recorder.select_notifications(
                start=position,
                limit=self.batch_size,
                stop=until,
                inclusive_of_start=False,
            )
            if not notifications:
                return position
            with self.views.changes() as changes:
                self.projection.apply(changes, self._decoded(notifications))
            # The position as this transaction left it (read under the lock:
            # it includes what other followers applied), without another query.
            position = max(changes.position, changes.tracked or 0)
            if progress is not None:
                progress(notifications[-1].id, until or self.latest_position())

    def catch_up_within(self, changes: ViewChanges) -> int:
        """Apply every notification after ``changes``' position inside its transaction.

        For a transaction that must end at the log's end (the rebuild's swap);
        returns the position reached.
        """
        while True:
            position = changes.tracked or changes.position
            notifications = self.app.recorder.select_notifications(
                start=position, limit=self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return position
            self.projection.apply(changes, self._decoded(notifications))

    def _decoded(self, notifications: Sequence[Notification]) -> list[tuple[Any, int]]:
        to_domain_event = self.app.mapper.to_domain_event
        return [(to_domain_event(n), n.id) for n in notifications]

    def lag(self) -> dict[str, int]:
        latest = self.latest_position()
        position = self.views.position()
        return {
            "latest_position": latest,
            "view_position": position,
            "lag": max(latest - position, 0),
        }

    def follow(
        self,
        stop: threading.Event,
        *,
        poll_interval: float = 1.0,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        """Keep the views current until ``stop`` is set.

        Wakes on PostgreSQL ``NOTIFY`` (when available) or every ``poll_interval``.
        ``between_batches`` runs after each catch-up (the worker's periodic chores).
        """
        listener = LogListener.for_app(self.app)
        try:
            while not stop.is_set():
                self.catch_up()
                if between_batches is not None:
                    between_batches()
                if listener is not None:
                    listener.wait(poll_interval, stop)
                else:
                    stop.wait(poll_interval)
        finally:
            if listener is not None:
                listener.close()


class LogListener:
    """``LISTEN`` on the events table's channel: wakes a follower when events are recorded."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        kwargs: dict[str, Any] = dict(cast(dict[str, Any], recorder.datastore.pool.kwargs))
        kwargs.pop("row_factory", None)
        self._connection = psycopg.connect(**kwargs, autocommit=True)
        self._connection.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))

    @classmethod
    def for_app(cls, app: Application[Any]) -> LogListener | None:
        if isinstance(app.recorder, PostgresApplicationRecorder):
            return cls(app.recorder)
        return None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Return after a notification, ``timeout`` seconds, or soon after ``stop``."""
        remaining = timeout
        step = min(timeout, 0.2)  # so that ``stop`` is noticed promptly
        while remaining > 0 and not stop.is_set():
            for _ in self._connection.notifies(timeout=step, stop_after=1):
                return
            remaining -= step

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._connection.close()
