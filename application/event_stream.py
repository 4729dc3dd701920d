"""Read one organization's events with their log positions; hear when events are recorded.

The library's notification log is global; an organization's stream with
positions needs a query per store (SQLite's ``rowid``, PostgreSQL's
``notification_id``), kept here behind one function. :class:`LogListener`
``LISTEN``s on the events table's channel (PostgreSQL): the view followers
and the webhooks runner wake on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier


def select_organization_notifications(
    recorder: ApplicationRecorder, organization_id: UUID, after: int, limit: int
) -> Sequence[Notification]:
    """Up to ``limit`` notifications of one organization with position > ``after``."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite(recorder, organization_id, after, limit)
    if isinstance(recorder, POPOApplicationRecorder):
        return _popo(recorder, organization_id, after, limit)
    return _postgres(recorder, organization_id, after, limit)


def _sqlite(
    recorder: SQLiteApplicationRecorder, organization_id: UUID, after: int, limit: int
) -> Sequence[Notification]:
    statement = (
        f"SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
        f"FROM {recorder.events_table_name} "
        "WHERE originator_id = ? AND rowid > ? ORDER BY rowid LIMIT ?"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (organization_id.hex, after, limit))
        return [
            Notification(
                id=row["rowid"],
                originator_id=recorder.convert_originator_id(row["originator_id"]),
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=row["state"],
            )
            for row in cursor.fetchall()
        ]


def _popo(
    recorder: POPOApplicationRecorder, organization_id: UUID, after: int, limit: int
) -> Sequence[Notification]:
    found: list[Notification] = []
    start = after + 1
    while len(found) < limit:
        page = recorder.select_notifications(start=start, limit=500)
        if not page:
            break
        found.extend(n for n in page if n.originator_id == organization_id)
        start = page[-1].id + 1
    return found[:limit]


def _postgres(
    recorder: Any, organization_id: UUID, after: int, limit: int
) -> Sequence[Notification]:
    statement = (
        "SELECT notification_id, originator_id, originator_version, topic, state "  # noqa: S608
        f"FROM {recorder.events_table_name} "
        "WHERE originator_id = %s AND notification_id > %s "
        "ORDER BY notification_id LIMIT %s"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (organization_id, after, limit))
        return [
            Notification(
                id=row["notification_id"],
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in cursor.fetchall()
        ]


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
        recorder = app.recorder
        return cls(recorder) if isinstance(recorder, PostgresApplicationRecorder) else None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Return after a notification, ``timeout`` seconds, or soon after ``stop``."""
        remaining, step = timeout, min(timeout, 0.2)
        while remaining > 0 and not stop.is_set():
            for _ in self.connection.notifies(timeout=step, stop_after=1):
                return
            remaining -= step

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.connection.close()
