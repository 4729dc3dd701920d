"""The webhook tables, beside the events in the same database (SqlTables).

Times the schedule runs on are integer milliseconds since the epoch of the
*service* clock (the test clock drives retries); leases are milliseconds of
the wall clock (a delivery in flight takes real time, whatever the test
clock says).
"""

from __future__ import annotations

from datetime import UTC, datetime

from application.sql_tables import SqlTables

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS integration_tracking (
        name TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS integration_events (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        ordinal INTEGER NOT NULL,
        type TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        envelope TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS integration_events_by_position "
    "ON integration_events (position, ordinal)",
    """CREATE TABLE IF NOT EXISTS integration_reminders (
        organization_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        due_ms BIGINT NOT NULL,
        until_ms BIGINT NOT NULL,
        PRIMARY KEY (organization_id, kind)
    )""",
    "CREATE INDEX IF NOT EXISTS integration_reminders_by_due ON integration_reminders (due_ms)",
    """CREATE TABLE IF NOT EXISTS webhook_endpoints (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_until_ms BIGINT,
        start_position BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        disabled INTEGER NOT NULL,
        disabled_reason TEXT,
        failing_since_ms BIGINT,
        deleted INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        position BIGINT NOT NULL,
        ordinal INTEGER NOT NULL,
        replay TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_ms BIGINT,
        lease_until_ms BIGINT,
        lease_owner TEXT,
        last_response_code INTEGER,
        last_latency_ms INTEGER,
        last_error TEXT,
        last_attempt_ms BIGINT,
        created_ms BIGINT NOT NULL,
        delivered_ms BIGINT,
        UNIQUE (endpoint_id, event_id, replay)
    )""",
    # The dispatcher's claim reads one endpoint's due deliveries in this order
    # (delivery.py ``_DUE``), so its LIMIT ends the scan. It replaces the first
    # schema's ``webhook_deliveries_due`` (status, next_attempt_ms).
    "DROP INDEX IF EXISTS webhook_deliveries_due",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due_by_endpoint "
    "ON webhook_deliveries (endpoint_id, status, next_attempt_ms, position, ordinal)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_line "
    "ON webhook_deliveries (endpoint_id, organization_id, status, position, ordinal)",
)


def create_webhook_tables(tables: SqlTables) -> None:
    tables.create(STATEMENTS)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso_ms(ms: int | None) -> str | None:
    moment = from_ms(ms)
    return None if moment is None else moment.isoformat()


def start_tracking(tables: SqlTables, name: str) -> None:
    """The follower ``name`` has a tracked position (0 until it moves); idempotent."""
    with tables.transaction() as cursor:
        tables.execute(
            cursor,
            "INSERT INTO integration_tracking (name, position) VALUES (%s, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (name,),
        )


def tracked_position(tables: SqlTables, name: str) -> int:
    """How far the follower ``name`` has come through the log."""
    with tables.read() as cursor:
        tables.execute(cursor, "SELECT position FROM integration_tracking WHERE name = %s", (name,))
        row = cursor.fetchone()
    return int(row["position"]) if row else 0
