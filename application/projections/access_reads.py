"""The access view's hot read: one statement for the row and the positions it needs.

``GET /v1/organizations/{org}/access`` is the service's most frequent
request. Read naively it cost two or three round trips (the log's last
position, then the row, each in its own BEGIN/ROLLBACK on PostgreSQL) and a
JSON parse of the stored facts. Here one statement returns, from one
snapshot of the database,

- the organization's row (``None`` when the views have none),
- when asked, the log's last position and the views' tracked position,

so the caller can tell whether the row is current without another query
(the row and the tracked position come from the same snapshot: if the
views had applied the log's end, the row includes every event of it).

Decoded facts are remembered per organization together with the exact JSON
text they were decoded from, and reused only when the stored text is the
same: the text is read on every request (never a version alone, so a
``suitesub audit rebuild --apply`` that repairs a row's facts at the same
version is served at once), only the parse is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from psycopg.sql import SQL, Identifier

from application.projections.rows import OrganizationRow, row_from_json
from application.projections.views import UPSTREAM, OrganizationViews
from domain.facts import OrganizationFacts

#: Organizations whose decoded facts a process remembers (oldest dropped first).
FACTS_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class AccessRead:
    """What one read saw, all from the same snapshot."""

    row: OrganizationRow | None
    #: The log's last position (0 for an empty log; 0 when not asked for).
    latest: int = 0
    #: The views' tracked position (0 when nothing applied; 0 when not asked for).
    tracked: int = 0


class DecodedFacts:
    """Facts decoded from their stored JSON text, per organization, bounded."""

    def __init__(self, size: int = FACTS_CACHE_SIZE) -> None:
        self.size = size
        self._entries: dict[str, tuple[str, OrganizationFacts]] = {}

    def row(
        self, organization_id: str, facts_text: str, version: int, position: int
    ) -> OrganizationRow:
        entry = self._entries.get(organization_id)
        if entry is not None and entry[0] == facts_text:
            return OrganizationRow(organization_id, entry[1], version, position)
        row = row_from_json(organization_id, facts_text, version, position)
        while len(self._entries) >= self.size:
            try:
                self._entries.pop(next(iter(self._entries)))
            except (StopIteration, KeyError, RuntimeError):  # pragma: no cover - raced
                break
        self._entries[organization_id] = (facts_text, row.facts)
        return row


class AccessReader:
    """Any store: the views' own queries, in an order that keeps the guarantee.

    The log's end is read first, then the tracked position, then the row: the
    views never move back, so if ``tracked >= latest`` the row (read last)
    includes everything up to ``latest``.
    """

    def __init__(self, app: Application[Any], views: OrganizationViews) -> None:
        self.app = app
        self.views = views

    def read(self, organization_id: str, *, with_positions: bool) -> AccessRead:
        if not with_positions:
            return AccessRead(self.views.access_row(organization_id))
        latest = self.app.recorder.max_notification_id() or 0
        tracked = self.views.position()
        return AccessRead(self.views.access_row(organization_id), latest, tracked)


class SQLiteAccessReader(AccessReader):
    """One ``SELECT`` on one pooled connection, outside any explicit transaction.

    In autocommit mode a single statement is its own read transaction: one
    WAL snapshot for the row and both positions.
    """

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        datastore: SQLiteDatastore,
        prefix: str,
    ) -> None:
        super().__init__(app, views)
        assert isinstance(app.recorder, SQLiteApplicationRecorder)
        self.datastore = datastore
        self.facts = DecodedFacts()
        access, tracking = f"{prefix}_access", f"{prefix}_tracking"
        events = app.recorder.events_table_name
        self._row_statement = (
            f"SELECT version, position, facts FROM {access} WHERE organization_id = ?"  # noqa: S608
        )
        self._positions_statement = (
            f"SELECT (SELECT MAX(rowid) FROM {events}) AS latest, "  # noqa: S608
            f"(SELECT notification_id FROM {tracking} WHERE application_name = ?) AS tracked, "
            f"a.version, a.position, a.facts FROM (SELECT 1) "
            f"LEFT JOIN {access} AS a ON a.organization_id = ?"
        )

    def read(self, organization_id: str, *, with_positions: bool) -> AccessRead:
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor()
            with cursor as sqlite_cursor:
                if with_positions:
                    sqlite_cursor.execute(self._positions_statement, (UPSTREAM, organization_id))
                else:
                    sqlite_cursor.execute(self._row_statement, (organization_id,))
                found = sqlite_cursor.fetchone()
        return _access_read(self.facts, organization_id, found, with_positions)


class PostgresAccessReader(AccessReader):
    """One statement on an autocommit connection: one round trip, no BEGIN/ROLLBACK.

    The facts come as jsonb's text so that an unchanged row is recognised
    without decoding it.
    """

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        datastore: PostgresDatastore,
        prefix: str,
    ) -> None:
        super().__init__(app, views)
        assert isinstance(app.recorder, PostgresApplicationRecorder)
        self.datastore = datastore
        self.facts = DecodedFacts()
        schema = Identifier(datastore.schema)
        access = Identifier(f"{prefix}_access")
        tracking = Identifier(f"{prefix}_tracking")
        events = Identifier(app.recorder.events_table_name)
        self._row_statement = (
            SQL(
                "SELECT version, position, facts::text AS facts FROM {0}.{1} "
                "WHERE organization_id = %s"
            )
            .format(schema, access)
            .as_string()
        )
        self._positions_statement = (
            SQL(
                "SELECT (SELECT MAX(notification_id) FROM {0}.{3}) AS latest, "
                "(SELECT notification_id FROM {0}.{2} WHERE application_name = %s) AS tracked, "
                "a.version, a.position, a.facts::text AS facts FROM (SELECT 1) AS one "
                "LEFT JOIN {0}.{1} AS a ON a.organization_id = %s"
            )
            .format(schema, access, tracking, events)
            .as_string()
        )

    def read(self, organization_id: str, *, with_positions: bool) -> AccessRead:
        key = UUID(organization_id)
        with self.datastore.get_connection() as connection:
            if with_positions:
                cursor = connection.execute(self._positions_statement, (UPSTREAM, key))
            else:
                cursor = connection.execute(self._row_statement, (key,))
            found = cursor.fetchone()
        return _access_read(self.facts, organization_id, found, with_positions)


def _access_read(
    facts: DecodedFacts, organization_id: str, found: Any, with_positions: bool
) -> AccessRead:
    if found is None:  # only without positions: the LEFT JOIN always answers one row
        return AccessRead(None)
    row = (
        None
        if found["version"] is None
        else facts.row(organization_id, found["facts"], found["version"], found["position"])
    )
    if not with_positions:
        return AccessRead(row)
    return AccessRead(row, found["latest"] or 0, found["tracked"] or 0)
