"""The webhooks' parts wired together, and the loop that keeps them going.

Where it runs is the views' setting (``SUITE_VIEW_FOLLOWER``): on the
embedded default each API process runs it on a background thread (as the API
keeps its views); with PostgreSQL ``suitesub worker`` runs it. Any number of
copies may run at once (see :mod:`.integration` and :mod:`.delivery`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from eventsourcing.application import Application

from application.event_stream import LogListener
from application.reconnect import CONNECTION_ERRORS, Backoff, first_line
from application.sql_tables import SqlTables
from application.webhooks.delivery import WebhookDispatcher, lease_seconds_from_env
from application.webhooks.endpoints import WebhookEndpoints
from application.webhooks.integration import IntegrationLog
from application.webhooks.nats_sink import NatsSettings, NatsSink
from application.webhooks.tables import create_webhook_tables
from application.webhooks.url_guard import UrlGuard, allow_private_from_env
from domain.catalog import Catalog
from domain.clock import Clock

log = logging.getLogger(__name__)

#: Extra sinks of the integration log (NATS JetStream): called with a stop event.
Sink = Callable[[threading.Event], None]


class Webhooks:
    def __init__(
        self,
        app: Application[Any],
        tables: SqlTables,
        catalog: Catalog,
        clock: Clock,
        *,
        guard: UrlGuard | None = None,
        dispatcher: WebhookDispatcher | None = None,
        nats: NatsSettings | None = None,
    ) -> None:
        create_webhook_tables(tables)
        self.app = app
        self.guard = guard or UrlGuard(allow_private=allow_private_from_env())
        self.integration = IntegrationLog(app, tables, catalog, clock)
        self.endpoints = WebhookEndpoints(app, tables, clock, self.guard)
        self.dispatcher = dispatcher or WebhookDispatcher(
            tables, clock, self.guard, lease_seconds=lease_seconds_from_env()
        )
        self.integration.on_deliveries = self.dispatcher.wake
        self.sinks: list[Sink] = []
        if nats is not None:
            self.sinks.append(NatsSink(tables, nats).run)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_in: int | None = None

    def run_once(self) -> int:
        """Follow the log to its end and send every due delivery; attempts made."""
        self.integration.catch_up()
        return self.dispatcher.deliver_due()

    def follow(self, stop: threading.Event, *, poll_interval: float = 0.2) -> None:
        """Keep the integration log current until ``stop`` is set.

        A lost database connection (the ``LISTEN`` one included) is waited out
        with the worker's backoff and a new listener; the integration log
        resumes from its own tracked position.
        """
        backoff = Backoff()
        listener: LogListener | None = None
        needs_listener = True
        try:
            while not stop.is_set():
                try:
                    if needs_listener:
                        listener = LogListener.for_app(self.app)
                        needs_listener = False
                    try:
                        self.integration.catch_up()
                    except CONNECTION_ERRORS:
                        raise
                    except Exception:
                        log.exception("webhooks: following the log failed; retrying")
                    if listener is not None:
                        listener.wait(poll_interval, stop)
                    else:
                        stop.wait(poll_interval)
                    backoff.reset()
                except CONNECTION_ERRORS as error:
                    delay = backoff.next_delay()
                    log.warning(
                        "webhooks: lost the database connection (%s); reconnecting in %.1f s",
                        first_line(error),
                        delay,
                    )
                    if listener is not None:
                        listener.close()
                        listener = None
                    needs_listener = True
                    stop.wait(delay)
        finally:
            if listener is not None:
                listener.close()

    def run(self, stop: threading.Event) -> None:
        """Follow, dispatch and feed the sinks until ``stop`` is set (blocks)."""
        threads = [
            threading.Thread(target=self.dispatcher.run, args=(stop,), name="webhook-dispatch"),
            *(
                threading.Thread(target=sink, args=(stop,), name="webhook-sink")
                for sink in self.sinks
            ),
        ]
        for thread in threads:
            thread.start()
        try:
            self.follow(stop)
        finally:
            stop.set()
            self.dispatcher.wake()
            for thread in threads:
                thread.join()

    def start_in_background(self) -> None:
        """Run on a daemon thread of this process (once per process: after a fork
        the parent's thread does not exist in the child)."""
        if self._started_in == os.getpid():
            return
        self._started_in = os.getpid()
        self._stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(self._stop,), name="webhooks", daemon=True)
        thread.start()
        self._threads = [thread]

    def close(self) -> None:
        self._stop.set()
        self.dispatcher.wake()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads = []
