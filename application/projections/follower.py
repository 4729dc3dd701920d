"""One follower of the log for every view: the public piece each new read model reuses.

A view is an ``eventsourcing`` tracking recorder with its own tables; its
projection is a :class:`BatchProjection` whose ``process_batch`` puts what
a batch of events changes *with* the batch's tracking, in one transaction
(like the library's ``examples/ftsprojection``). :class:`Follower` feeds any
such projection from the application's notification log, a batch at a time,
after the view's tracked position::

    follower = Follower(app, InvoicesProjection(view=InvoicesView(...)))
    follower.catch_up()                  # apply what the view has not
    follower.follow(stop)                # keep it current until ``stop`` is set

SQLite has no ``subscribe()``, so following is polling; on PostgreSQL
:class:`LogListener` wakes the follower on the events table's ``NOTIFY``.
Any number of followers of one view may run at once: a view's write takes
its lock and re-reads its tracked position, so the second skips what the
first applied (exactly once).

An event that cannot be decoded or applied (application/view_faults.py) is
passed over — recorded, logged, and given to the projection as ``None`` with
its tracking, so only the position moves — rather than stop every
organization's view at it for ever.
"""

from __future__ import annotations

import contextlib
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.projection import Projection
from psycopg.sql import SQL, Identifier

from application.view_faults import ViewFaults, cannot_apply, cannot_decode, isolate_faults

DEFAULT_BATCH_SIZE = 500

#: Called with (view's position, target position) after each applied batch.
Progress = Callable[[int, int], None]

#: A batch: each decoded event with the tracking of its place in the log.
Batch = Sequence[tuple[Any, Tracking]]

TView = TypeVar("TView", bound=TrackingRecorder)


class BatchProjection(Projection[TView]):
    """A projection that puts a whole batch with its tracking in one transaction."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])

    @abstractmethod
    def process_batch(self, events: Batch) -> int:
        """Put what ``events`` change, with the last one's tracking; how many were new.

        An event of ``None`` is one the follower passed over (it cannot be
        decoded or applied): only its tracking counts, as for an event the
        projection does not show.
        """


class Follower(Generic[TView]):
    """Applies the application's notification log to one projection's view."""

    def __init__(
        self,
        app: Application[Any],
        projection: BatchProjection[TView],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        faults: ViewFaults | None = None,
    ) -> None:
        self.app = app
        self.projection = projection
        self.batch_size = batch_size
        #: Where events passed over are recorded (``None``: only logged).
        self.faults = faults

    @property
    def view(self) -> TView:
        return self.projection.view

    def position(self) -> int:
        """The log position the view has applied (0: nothing yet)."""
        return self.view.max_tracking_id(self.app.name) or 0

    def latest_position(self) -> int:
        """The log's last position (0 for an empty log)."""
        return self.app.recorder.max_notification_id() or 0

    def batches(self, after: int, until: int | None = None) -> Iterator[Batch]:
        """The decoded log after ``after`` (up to ``until``), ``batch_size`` at a time.

        Read lazily: a consumer that applies each batch before asking for
        the next sees the log as it grows.
        """
        to_domain_event = self.app.mapper.to_domain_event
        name = self.app.name
        while until is None or after < until:
            notifications = self.app.recorder.select_notifications(
                start=after, limit=self.batch_size, stop=until, inclusive_of_start=False
            )
            if not notifications:
                return
            yield [(to_domain_event(n), Tracking(name, n.id)) for n in notifications]
            after = notifications[-1].id

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Apply every notification after the view's position (up to ``until``).

        Returns the view's position afterwards.
        """
        after = self.position()
        name = self.app.name
        decode = self.app.mapper.to_domain_event

        def apply_one(event: Any, notification: Any) -> None:
            self.projection.process_batch([(event, Tracking(name, notification.id))])

        while until is None or after < until:
            notifications = self.app.recorder.select_notifications(
                start=after, limit=self.batch_size, stop=until, inclusive_of_start=False
            )
            if not notifications:
                break
            batch: Batch | None = None
            try:
                batch = [(decode(n), Tracking(name, n.id)) for n in notifications]
                self.projection.process_batch(batch)
            except Exception as error:
                if not (cannot_decode(error) if batch is None else cannot_apply(error)):
                    raise
                # An event of the batch cannot be decoded or applied: the batch
                # again one event at a time, the bad one recorded and passed over,
                # so one organization's event never stops every organization's view.
                isolate_faults(notifications, decode, apply_one, self.faults)
            after = notifications[-1].id
            if progress is not None:
                progress(after, until or self.latest_position())
        return self.position()

    def lag(self) -> dict[str, int]:
        latest = self.latest_position()
        position = self.position()
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
        """Keep the view current until ``stop`` is set.

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


def connection_kwargs(datastore: Any) -> dict[str, Any]:
    """How to open one more connection like the datastore's pool does (for ``LISTEN``)."""
    kwargs: dict[str, Any] = dict(cast(dict[str, Any], datastore.pool.kwargs))
    kwargs.pop("row_factory", None)
    return kwargs


class LogListener:
    """``LISTEN`` on the events table's channel: wakes a follower when events are recorded."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.connection = psycopg.connect(**connection_kwargs(recorder.datastore), autocommit=True)
        self.connection.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))

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
            for _ in self.connection.notifies(timeout=step, stop_after=1):
                return
            remaining -= step

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.connection.close()
