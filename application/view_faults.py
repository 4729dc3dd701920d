"""Events a view follower could not decode or apply: recorded, reported, passed over.

The log is shared by every organization, and a follower applies it in order:
one event that cannot be decoded (bytes that are not an event) or applied
(a value the views' database refuses, a fold that raises) would otherwise
stop every organization's views at that position for ever — each restart
meets it again — and every ``min_position`` read would answer 503.

So a follower that meets such an event (:func:`isolate_faults`) records a
:class:`ViewFault` in the ``view_faults`` table (beside the events, so every
process sees it: ``/readyz`` reports them), logs it, and moves the views'
position past it; every other event, of every organization, is applied as
before. Only a fault of the *event* is passed over — it cannot be decoded,
or applying it fails on its data (:data:`EVENT_FAULTS`: the database
refuses a value, the fold meets a missing or mistyped field). Anything else
(the database does not answer, the process is stopping) is raised as before,
and the follower retries from where it was.

The organization whose event was passed over keeps a view without that
event until the cause is fixed (an upcaster, a code fix) and the views are
rebuilt (``suitesub audit rebuild --apply``); ``suitesub audit verify``
names the event too. Since the domain refuses text the log cannot hold
(``domain/text.py``), such events come only from outside the service.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import Notification

from application.sql_tables import SqlTables

log = logging.getLogger(__name__)

VIEW_FAULTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS view_faults ("
    " position BIGINT PRIMARY KEY,"
    " organization_id TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " topic TEXT NOT NULL,"
    " problem TEXT NOT NULL)"
)
#: How many faults ``/readyz`` lists (it always gives the count).
LISTED_FAULTS = 20
#: The longest problem text kept (an exception's message can be long).
MAX_PROBLEM_LENGTH = 500

#: Errors of the moment (the database did not answer), never a fault of an event.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
    OSError,
)
#: Errors that applying an event raises because of its data: a value the
#: database refuses (a NUL in a text column), a field missing or mistyped.
EVENT_FAULTS: tuple[type[BaseException], ...] = (
    persistence.DataError,
    psycopg.DataError,
    sqlite3.DataError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
)


@dataclass(frozen=True, slots=True)
class ViewFault:
    """One event the views passed over, and why."""

    position: int
    organization_id: str
    version: int
    topic: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "organization_id": self.organization_id,
            "version": self.version,
            "topic": self.topic,
            "problem": self.problem,
        }

    @classmethod
    def of(cls, notification: Notification, stage: str, error: BaseException) -> ViewFault:
        problem = f"{stage}: {type(error).__name__}: {error}"
        # Never a control character in a log line or a table (the error may quote the event).
        problem = problem.encode("unicode_escape").decode("ascii")[:MAX_PROBLEM_LENGTH]
        return cls(
            position=notification.id,
            organization_id=str(notification.originator_id),
            version=notification.originator_version,
            topic=notification.topic,
            problem=problem,
        )


class ViewFaults:
    """The ``view_faults`` table (one row per event passed over, by log position)."""

    def __init__(self, tables: SqlTables) -> None:
        self._tables = tables
        tables.create([VIEW_FAULTS_TABLE])

    def record(self, fault: ViewFault) -> None:
        log.error(
            "views: passed over the event at position %d (organization %s, version %d): %s",
            fault.position,
            fault.organization_id,
            fault.version,
            fault.problem,
        )
        with self._tables.transaction() as cursor:
            # Several followers may meet the same event: the first one records it.
            self._tables.execute(
                cursor,
                "INSERT INTO view_faults (position, organization_id, version, topic, problem)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (position) DO NOTHING",
                (
                    fault.position,
                    fault.organization_id,
                    fault.version,
                    fault.topic,
                    fault.problem,
                ),
            )

    def summary(self, limit: int = LISTED_FAULTS) -> dict[str, Any]:
        """``{"count", "faults": [the first ``limit``, by position]}`` for ``/readyz``."""
        with self._tables.read() as cursor:
            self._tables.execute(cursor, "SELECT COUNT(*) AS n FROM view_faults")
            count = int(cursor.fetchone()["n"])
            self._tables.execute(
                cursor,
                "SELECT position, organization_id, version, topic, problem FROM view_faults"
                " ORDER BY position LIMIT %s",
                (limit,),
            )
            rows = cursor.fetchall()
        faults = [
            ViewFault(
                int(row["position"]),
                str(row["organization_id"]),
                int(row["version"]),
                str(row["topic"]),
                str(row["problem"]),
            )
            for row in rows
        ]
        return {"count": count, "faults": [fault.to_dict() for fault in faults]}


def cannot_decode(error: BaseException) -> bool:
    """Whether ``error``, raised decoding an event, is the event's fault."""
    return isinstance(error, Exception) and not isinstance(error, TRANSIENT_ERRORS)


def cannot_apply(error: BaseException) -> bool:
    """Whether ``error``, raised applying an event, is the event's fault."""
    return isinstance(error, EVENT_FAULTS) and not isinstance(error, TRANSIENT_ERRORS)


def isolate_faults(
    notifications: Sequence[Notification],
    decode: Callable[[Notification], Any],
    apply: Callable[[Any, Notification], Any],
    faults: ViewFaults | None,
) -> None:
    """Apply ``notifications`` one at a time, recording and passing over those that fail.

    Called when a whole batch failed: ``decode`` turns a notification into a
    domain event; ``apply(event, notification)`` applies one in a transaction
    of its own — an event of ``None`` only moves the position, which is how
    a faulty event is passed over once its fault is recorded.
    """
    for notification in notifications:
        try:
            event = decode(notification)
        except Exception as error:
            if not cannot_decode(error):
                raise
            _record(faults, ViewFault.of(notification, "cannot be decoded", error))
            apply(None, notification)
            continue
        try:
            apply(event, notification)
        except Exception as error:
            if not cannot_apply(error):
                raise
            _record(faults, ViewFault.of(notification, "cannot be applied", error))
            apply(None, notification)


def _record(faults: ViewFaults | None, fault: ViewFault) -> None:
    if faults is None:
        log.error("views: passed over the event at position %d: %s", fault.position, fault.problem)
    else:
        faults.record(fault)
