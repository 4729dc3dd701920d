"""Webhook endpoints (operators' API of SPEC §12): their rows and their deliveries.

An endpoint hears the integration events recorded *after* it was created
(its ``start_position``); earlier ones are sent with a replay. The signing
secret is shown once, in the answer to the creation (and to a rotation).
A rotation keeps the old secret signing beside the new one for
:data:`ROTATION_OVERLAP`, by the service clock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from application.ids import random_id
from application.sql_tables import SqlTables
from application.webhooks.integration import (
    delivery_row,
    insert_deliveries,
    parse_types,
    subscribes,
)
from application.webhooks.signing import new_secret
from application.webhooks.tables import iso_ms, to_ms
from application.webhooks.url_guard import UrlGuard
from domain.clock import Clock
from domain.errors import InvalidRequest, NotFound, StateConflict

ROTATION_OVERLAP = timedelta(hours=24)
MAX_DELIVERY_PAGE = 200
MAX_REPLAY = 10_000
DELIVERY_STATUSES = ("pending", "delivered", "cancelled")

_ENDPOINT_COLUMNS = (
    "id, url, events, description, previous_secret_until_ms, start_position, created_ms, "
    "disabled, disabled_reason, failing_since_ms"
)
_DELIVERY_COLUMNS = (
    "id, event_id, event_type, organization_id, position, replay, status, attempts, "
    "next_attempt_ms, last_response_code, last_latency_ms, last_error, last_attempt_ms, "
    "created_ms, delivered_ms"
)


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No webhook endpoint {endpoint_id}.", details={"id": endpoint_id})


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"No delivery {delivery_id}.", details={"id": delivery_id})


def _endpoint_view(row: Any, now_ms: int) -> dict[str, Any]:
    until = row["previous_secret_until_ms"]
    return {
        "id": row["id"],
        "url": row["url"],
        "events": json.loads(row["events"]),
        "description": row["description"],
        "disabled": bool(row["disabled"]),
        "disabled_reason": row["disabled_reason"],
        "failing_since": iso_ms(row["failing_since_ms"]),
        "previous_secret_expires_at": iso_ms(until) if until and until > now_ms else None,
        "start_position": int(row["start_position"]),
        "created_at": iso_ms(row["created_ms"]),
    }


def _delivery_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "organization_id": row["organization_id"],
        "position": int(row["position"]),
        "replay": bool(row["replay"]),
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "next_attempt_at": iso_ms(row["next_attempt_ms"]) if row["status"] == "pending" else None,
        "last_response_code": row["last_response_code"],
        "last_latency_ms": row["last_latency_ms"],
        "last_error": row["last_error"],
        "last_attempt_at": iso_ms(row["last_attempt_ms"]),
        "created_at": iso_ms(row["created_ms"]),
        "delivered_at": iso_ms(row["delivered_ms"]),
    }


class WebhookEndpoints:
    def __init__(
        self, app: Application[Any], tables: SqlTables, clock: Clock, guard: UrlGuard
    ) -> None:
        self.app = app
        self.tables = tables
        self.clock = clock
        self.guard = guard

    def _now_ms(self) -> int:
        return to_ms(self.clock.now())

    def _events(self, events: Sequence[str]) -> list[str]:
        if not events:
            raise InvalidRequest(
                "Subscribe to at least one event type (or '*').",
                details={"fields": {"events": ["must not be empty"]}},
            )
        return list(parse_types(events))

    def create(self, *, url: str, events: Sequence[str], description: str) -> dict[str, Any]:
        self.guard.resolve(url)
        wanted = self._events(events)
        endpoint_id = random_id("we_", 12)
        secret = new_secret()
        now_ms = self._now_ms()
        start = self.app.recorder.max_notification_id() or 0
        with self.tables.transaction() as cursor:
            self.tables.execute(
                cursor,
                "INSERT INTO webhook_endpoints (id, url, events, description, secret, "
                "start_position, created_ms, disabled, deleted) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 0, 0)",
                (endpoint_id, url, json.dumps(wanted), description, secret, start, now_ms),
            )
        return {**self.get(endpoint_id), "secret": secret}

    def _row(self, cursor: Any, endpoint_id: str) -> Any:
        self.tables.execute(
            cursor,
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints "  # noqa: S608
            "WHERE id = %s AND deleted = 0",
            (endpoint_id,),
        )
        row = cursor.fetchone()
        if row is None:
            raise WebhookEndpointNotFound(endpoint_id)
        return row

    def get(self, endpoint_id: str) -> dict[str, Any]:
        now_ms = self._now_ms()  # before the read: the test clock reads its own table
        with self.tables.read() as cursor:
            return _endpoint_view(self._row(cursor, endpoint_id), now_ms)

    def list(self) -> list[dict[str, Any]]:
        now_ms = self._now_ms()
        with self.tables.read() as cursor:
            self.tables.execute(
                cursor,
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints "  # noqa: S608
                "WHERE deleted = 0 ORDER BY created_ms, id",
            )
            return [_endpoint_view(row, now_ms) for row in cursor.fetchall()]

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        if url is not None:
            self.guard.resolve(url)
        wanted = None if events is None else self._events(events)
        execute = self.tables.execute
        with self.tables.transaction() as cursor:
            self._row(cursor, endpoint_id)
            if url is not None:
                execute(
                    cursor,
                    "UPDATE webhook_endpoints SET url = %s WHERE id = %s",
                    (url, endpoint_id),
                )
            if wanted is not None:
                execute(
                    cursor,
                    "UPDATE webhook_endpoints SET events = %s WHERE id = %s",
                    (json.dumps(wanted), endpoint_id),
                )
            if description is not None:
                execute(
                    cursor,
                    "UPDATE webhook_endpoints SET description = %s WHERE id = %s",
                    (description, endpoint_id),
                )
            if disabled is True:
                execute(
                    cursor,
                    "UPDATE webhook_endpoints SET disabled = 1, "
                    "disabled_reason = 'disabled by an operator' WHERE id = %s AND disabled = 0",
                    (endpoint_id,),
                )
            elif disabled is False:
                execute(
                    cursor,
                    "UPDATE webhook_endpoints SET disabled = 0, disabled_reason = NULL, "
                    "failing_since_ms = NULL WHERE id = %s",
                    (endpoint_id,),
                )
        return self.get(endpoint_id)

    def delete(self, endpoint_id: str) -> None:
        with self.tables.transaction() as cursor:
            self._row(cursor, endpoint_id)
            self.tables.execute(
                cursor, "UPDATE webhook_endpoints SET deleted = 1 WHERE id = %s", (endpoint_id,)
            )
            self.tables.execute(
                cursor,
                "UPDATE webhook_deliveries SET status = 'cancelled' "
                "WHERE endpoint_id = %s AND status = 'pending'",
                (endpoint_id,),
            )

    def rotate_secret(self, endpoint_id: str) -> dict[str, Any]:
        """A new secret; the current one keeps signing beside it for 24 hours."""
        secret = new_secret()
        until = self._now_ms() + int(ROTATION_OVERLAP.total_seconds() * 1000)
        with self.tables.transaction() as cursor:
            self._row(cursor, endpoint_id)
            self.tables.execute(
                cursor,
                "UPDATE webhook_endpoints SET previous_secret = secret, "
                "previous_secret_until_ms = %s, secret = %s WHERE id = %s",
                (until, secret, endpoint_id),
            )
        return {**self.get(endpoint_id), "secret": secret}

    def deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        organization_id: UUID | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """The endpoint's deliveries, newest first (of one organization, if named)."""
        if not 1 <= limit <= MAX_DELIVERY_PAGE:
            raise InvalidRequest(
                "The page is invalid.",
                details={"fields": {"limit": [f"must be 1 to {MAX_DELIVERY_PAGE}"]}},
            )
        where, params = "endpoint_id = %s", [endpoint_id]
        if organization_id is not None:
            where += " AND organization_id = %s"
            params.append(str(organization_id))
        if status is not None:
            where += " AND status = %s"
            params.append(status)
        with self.tables.read() as cursor:
            self._row(cursor, endpoint_id)
            self.tables.execute(
                cursor,
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "  # noqa: S608
                f"WHERE {where} ORDER BY position DESC, ordinal DESC, created_ms DESC LIMIT %s",
                (*params, limit),
            )
            return {"deliveries": [_delivery_view(row) for row in cursor.fetchall()]}

    def retry(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """Attempt the delivery again now (also a delivered one: it is sent once more)."""
        now_ms = self._now_ms()
        with self.tables.transaction() as cursor:
            endpoint = self._row(cursor, endpoint_id)
            if endpoint["disabled"]:
                raise StateConflict(
                    "The endpoint is disabled: enable it first (PATCH disabled=false).",
                    code="webhook_endpoint_disabled",
                    details={"reason": endpoint["disabled_reason"]},
                )
            self.tables.execute(
                cursor,
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_ms = %s "
                "WHERE id = %s AND endpoint_id = %s",
                (now_ms, delivery_id, endpoint_id),
            )
            self.tables.execute(
                cursor,
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "  # noqa: S608
                "WHERE id = %s AND endpoint_id = %s",
                (delivery_id, endpoint_id),
            )
            row = cursor.fetchone()
            if row is None:
                raise WebhookDeliveryNotFound(delivery_id)
            return _delivery_view(row)

    def replay(self, endpoint_id: str, *, after_position: int) -> dict[str, Any]:
        """Send again every subscribed envelope after ``after_position`` (same ids)."""
        if after_position < 0:
            raise InvalidRequest(
                "after_position must not be negative.",
                details={"fields": {"after_position": ["must not be negative"]}},
            )
        replay = random_id("rpl_", 8)
        now_ms = self._now_ms()
        execute = self.tables.execute
        with self.tables.transaction() as cursor:
            endpoint = self._row(cursor, endpoint_id)
            events = json.loads(endpoint["events"])
            execute(
                cursor,
                "SELECT id, type, organization_id, position, ordinal FROM integration_events "
                "WHERE position > %s ORDER BY position, ordinal LIMIT %s",
                (after_position, MAX_REPLAY + 1),
            )
            rows = [dict(row) for row in cursor.fetchall()]
            more = len(rows) > MAX_REPLAY
            chosen = [r for r in rows[:MAX_REPLAY] if subscribes(events, r["type"])]
            insert_deliveries(
                self.tables,
                cursor,
                [delivery_row(endpoint_id, r, r["ordinal"], now_ms, replay) for r in chosen],
            )
        last = rows[MAX_REPLAY - 1]["position"] if more else None
        return {
            "replay_id": replay,
            "deliveries": len(chosen),
            "after_position": after_position,
            "next": last,
        }
