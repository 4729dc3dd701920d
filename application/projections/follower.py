"""One follower of the log for every view (docs/architecture.md, "The follower").

A view is an ``eventsourcing`` tracking recorder; its projection's
``process_batch`` puts a batch *with* its tracking in one transaction, and
skips, under the view's lock, what it already applied (exactly once however
many followers run). An event that cannot be decoded or applied is passed
over (application/view_faults.py) and handed on as ``None``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking

from application.event_stream import LogListener
from application.projections.tracking import Batch, TView, ViewProjection
from application.view_faults import ViewFaults, cannot_apply, cannot_decode, isolate_faults

DEFAULT_BATCH_SIZE = 500
#: Called with (view's position, target position) after each applied batch.
Progress = Callable[[int, int], None]


class Follower(Generic[TView]):
    """Applies the application's notification log to one projection's view."""

    def __init__(
        self,
        app: Application[Any],
        projection: ViewProjection[TView],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        faults: ViewFaults | None = None,
    ) -> None:
        self.app, self.projection, self.batch_size = app, projection, batch_size
        #: Where events passed over are recorded (``None``: only logged).
        self.faults = faults

    @property
    def view(self) -> TView:
        return self.projection.view

    def position(self) -> int:
        return self.view.max_tracking_id(self.app.name) or 0

    def latest_position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def notifications(self, after: int, until: int | None) -> Iterator[Sequence[Notification]]:
        """The log after ``after`` (up to ``until``), a batch at a time, read lazily."""
        while until is None or after < until:
            found = self.app.recorder.select_notifications(
                start=after, limit=self.batch_size, stop=until, inclusive_of_start=False
            )
            if not found:
                return
            yield found
            after = found[-1].id

    def decoded(self, found: Sequence[Notification]) -> Batch:
        decode, name = self.app.mapper.to_domain_event, self.app.name
        return [(decode(n), Tracking(name, n.id)) for n in found]

    def batches(self, after: int, until: int | None = None) -> Iterator[Batch]:
        for found in self.notifications(after, until):
            yield self.decoded(found)

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Apply the log after the view's position (up to ``until``); the position after."""
        decode, name = self.app.mapper.to_domain_event, self.app.name

        def apply_one(event: Any, notification: Notification) -> None:
            self.projection.process_batch([(event, Tracking(name, notification.id))])

        for found in self.notifications(self.position(), until):
            batch: Batch | None = None
            try:
                batch = self.decoded(found)
                self.projection.process_batch(batch)
            except Exception as error:
                if not (cannot_decode(error) if batch is None else cannot_apply(error)):
                    raise
                # One at a time, the bad event recorded and passed over: one
                # organization's event never stops every organization's view.
                isolate_faults(found, decode, apply_one, self.faults)
            if progress is not None:
                progress(found[-1].id, until or self.latest_position())
        return self.position()

    def lag(self) -> dict[str, int]:
        latest, position = self.latest_position(), self.position()
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
        """Keep the view current until ``stop``: wakes on ``NOTIFY`` or every ``poll_interval``;
        ``between_batches`` runs after each catch-up (the worker's chores)."""
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
