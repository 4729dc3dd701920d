"""An optional second sink: the same envelopes published to NATS JetStream.

``SUITE_NATS_URL`` turns it on (``suitesub worker``, or the API process on
the embedded default, wherever the webhooks run). Each envelope is published
on ``suite.events.<organization_id>.<type>`` with ``Nats-Msg-Id`` = the event
id, after the integration log has recorded it, and the sink's own position
(a row of ``integration_tracking``) moves only after JetStream acknowledged
every envelope of a position. A crash between the two republishes those
envelopes on restart, and JetStream's duplicate window (2 minutes by default)
drops them: at least once in, exactly once in the stream.

The stream (``SUITE_NATS_STREAM``, default ``SUITE_EVENTS``, subjects
``suite.events.>``) is created if missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass

import nats
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from application.sql_tables import SqlTables
from application.webhooks.tables import start_tracking, tracked_position

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "suite.events"
DEFAULT_STREAM = "SUITE_EVENTS"
TRACKING_NAME = "nats"
BATCH = 500


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str
    stream: str = DEFAULT_STREAM

    @classmethod
    def from_env(cls) -> NatsSettings | None:
        url = os.environ.get("SUITE_NATS_URL")
        if not url:
            return None
        return cls(url, os.environ.get("SUITE_NATS_STREAM") or DEFAULT_STREAM)


def subject(organization_id: str, event_type: str) -> str:
    return f"{SUBJECT_PREFIX}.{organization_id}.{event_type}"


class NatsSink:
    def __init__(self, tables: SqlTables, settings: NatsSettings) -> None:
        self.tables = tables
        self.settings = settings
        start_tracking(tables, TRACKING_NAME)

    def position(self) -> int:
        return tracked_position(self.tables, TRACKING_NAME)

    def _pending(self, after: int) -> list[tuple[int, str, str, str, str]]:
        with self.tables.read() as cursor:
            self.tables.execute(
                cursor,
                "SELECT position, id, organization_id, type, envelope FROM integration_events "
                "WHERE position > %s ORDER BY position, ordinal LIMIT %s",
                (after, BATCH),
            )
            return [
                (int(r["position"]), r["id"], r["organization_id"], r["type"], r["envelope"])
                for r in cursor.fetchall()
            ]

    def _track(self, position: int) -> None:
        with self.tables.transaction() as cursor:
            self.tables.execute(
                cursor,
                "UPDATE integration_tracking SET position = %s WHERE name = %s AND position < %s",
                (position, TRACKING_NAME, position),
            )

    async def publish_pending(self, js: nats.js.JetStreamContext) -> int:
        """Publish every envelope after the sink's position; how many were new to the stream."""
        fresh = 0
        position = self.position()
        while True:
            rows = self._pending(position)
            if not rows:
                return fresh
            # A page may end inside a position: track only whole positions.
            complete = rows if len(rows) < BATCH else [r for r in rows if r[0] != rows[-1][0]]
            for row_position, event_id, organization_id, event_type, envelope in complete or rows:
                ack = await js.publish(
                    subject(organization_id, event_type),
                    envelope.encode("utf-8"),
                    stream=self.settings.stream,
                    headers={"Nats-Msg-Id": event_id},
                )
                fresh += 0 if ack.duplicate else 1
                position = row_position
            self._track(position)

    async def ensure_stream(self, js: nats.js.JetStreamContext) -> None:
        try:
            await js.stream_info(self.settings.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(name=self.settings.stream, subjects=[f"{SUBJECT_PREFIX}.>"])
            )

    async def _run(self, stop: threading.Event, poll_interval: float) -> None:
        connection = await nats.connect(self.settings.url, connect_timeout=5)
        try:
            js = connection.jetstream()
            await self.ensure_stream(js)
            while not stop.is_set():
                try:
                    await self.publish_pending(js)
                except Exception:
                    log.exception("nats sink: publishing failed; retrying")
                await asyncio.sleep(poll_interval)
        finally:
            await connection.close()

    def run(self, stop: threading.Event, *, poll_interval: float = 0.25) -> None:
        """Publish until ``stop`` is set (a sink of :class:`~.runner.Webhooks`)."""
        while not stop.is_set():
            try:
                asyncio.run(self._run(stop, poll_interval))
            except Exception:
                log.exception("nats sink: connection to %s failed; retrying", self.settings.url)
                stop.wait(5)
