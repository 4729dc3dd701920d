"""The integration log: a follower of the event log with its own tracked position.

For each batch of stored events it writes, in one transaction with its new
position:

- the envelopes :func:`domain.integration_events.announce` derives (the pull
  feed ``GET /v1/events`` reads them; ids are stable, so writing one twice is
  a no-op);
- each organization's pending reminders (when ``trial.will_end`` and
  ``bundle.renewal_upcoming`` fall due), which the sweep reads;
- one delivery per envelope per subscribed endpoint (the deliveries' own
  state then lives in ``webhook_deliveries``).

Nothing is written in the command path: the log is the outbox. Several
followers may run (API processes on SQLite, ``suitesub worker`` processes on
PostgreSQL): the first statement of each batch's transaction locks the
tracking row, the position is re-read under that lock, and whatever another
follower applied first is skipped.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.ids import random_id
from application.service import project_organization
from application.sql_tables import SqlTables
from application.webhooks.tables import start_tracking, to_ms, tracked_position
from domain.access_view import ServiceRows
from domain.catalog import Catalog
from domain.clock import Clock
from domain.errors import InvalidRequest
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts
from domain.integration_events import EVENT_TYPES, Before, IntegrationEvent, announce
from domain.organization import Organization
from domain.reminders import pending_reminders

TRACKING_NAME = "integration_events"
DEFAULT_BATCH_SIZE = 500
#: A catch-up's first batch; each next one doubles, up to the batch size. The
#: deliveries of a burst can start once its first events are followed, not
#: after 500 of them: on PostgreSQL in the webhook_delivery benchmark the
#: first 500 (decided, then written) took 150 ms during which nothing was sent.
FIRST_BATCH_SIZE = 100
MAX_PAGE = 500
#: Organizations whose latest facts the follower keeps in memory.
FACTS_CACHE_SIZE = 10_000
#: Ids per ``IN (…)`` list (SQLite allows 32 766 parameters; this stays far below).
_CHUNK = 500

_INSERT_ENVELOPE = (
    "INSERT INTO integration_events (id, position, ordinal, type, organization_id, envelope) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)


#: The envelope's text is ``json.dumps(…, ensure_ascii=False, separators=(",", ":"))``
#: (what :data:`ENVELOPE_JSON` writes); :func:`envelope_json` writes it with
#: orjson, which gives those very bytes for plain JSON without floats — the
#: envelopes hold none — at a fifth of the cost (the follower's share of the
#: webhook_delivery benchmark).
ENVELOPE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: What orjson would write differently from :data:`ENVELOPE_JSON`, it refuses
#: instead: datetimes and dataclasses (``json`` refuses them too), non-``str``
#: keys, integers beyond 64 bits, lone surrogates; those go to the reference.
_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def envelope_json(envelope: Mapping[str, Any]) -> str:
    """An envelope's stored (and sent) text; the same as :data:`ENVELOPE_JSON`'s."""
    try:
        return orjson.dumps(envelope, option=_ORJSON_STRICT).decode()
    except TypeError:
        return ENVELOPE_JSON.encode(envelope)


def _envelope_row(item: IntegrationEvent, ordinal: int) -> tuple[Any, ...]:
    return (
        item.id,
        item.position,
        ordinal,
        item.type,
        item.organization_id,
        envelope_json(item.envelope()),
    )


@dataclass(frozen=True, slots=True)
class _Known:
    version: int
    facts: OrganizationFacts
    at: Any  # datetime of the organization's last event
    view: ServiceRows  # its service rows then (what ``access.changed`` compares with)


def parse_types(raw: Sequence[str]) -> tuple[str, ...]:
    """Integration event type names (``*`` for all), refusing unknown ones."""
    unknown = sorted({t for t in raw if t != "*" and t not in EVENT_TYPES})
    if unknown:
        raise InvalidRequest(
            f"Unknown event type(s): {', '.join(unknown)}.",
            code="unknown_event_type",
            details={"unknown": unknown, "known": list(EVENT_TYPES)},
        )
    return tuple(dict.fromkeys(raw))


def subscribes(events: Sequence[str], event_type: str) -> bool:
    return "*" in events or event_type in events


class IntegrationLog:
    def __init__(
        self,
        app: Application[Any],
        tables: SqlTables,
        catalog: Catalog,
        clock: Clock,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.app = app
        self.tables = tables
        self.catalog = catalog
        self.clock = clock
        self.batch_size = batch_size
        self._known: OrderedDict[UUID, _Known] = OrderedDict()
        self._lock = threading.Lock()
        #: Called after a batch that created deliveries (wakes the dispatcher).
        self.on_deliveries: Callable[[], None] | None = None
        start_tracking(tables, TRACKING_NAME)

    # -- following ----------------------------------------------------------------

    def position(self) -> int:
        return tracked_position(self.tables, TRACKING_NAME)

    def catch_up(self, until: int | None = None) -> int:
        """Apply every stored event after the tracked position; return the position."""
        with self._lock:  # one batch at a time per process; other processes: the row lock
            position = self.position()
            size = min(FIRST_BATCH_SIZE, self.batch_size)
            while until is None or position < until:
                notifications = self.app.recorder.select_notifications(
                    start=position,
                    limit=size,
                    stop=until,
                    inclusive_of_start=False,
                )
                if not notifications:
                    break
                position = self._apply(notifications)
                size = min(size * 2, self.batch_size)
            return position

    def _apply(self, notifications: Sequence[Notification]) -> int:
        # Decided before the transaction: loading an aggregate reads the store.
        announced = [(n.id, *self._announce(n)) for n in notifications]
        # Read before the transaction: the test clock reads its own table.
        now_ms = to_ms(self.clock.now())
        with self.tables.transaction() as cursor:
            execute = self.tables.execute
            # The first statement writes: it takes the lock other followers wait on.
            execute(
                cursor,
                "UPDATE integration_tracking SET position = position WHERE name = %s",
                (TRACKING_NAME,),
            )
            execute(
                cursor,
                "SELECT position FROM integration_tracking WHERE name = %s",
                (TRACKING_NAME,),
            )
            tracked = int(cursor.fetchone()["position"])
            fresh = [item for item in announced if item[0] > tracked]
            if not fresh:
                return tracked
            endpoints = self._subscribed_endpoints(cursor)
            latest: dict[str, OrganizationFacts] = {}
            envelope_rows: list[tuple[Any, ...]] = []
            delivery_rows: list[tuple[Any, ...]] = []
            for _position, envelopes, facts in fresh:
                if facts is not None:
                    latest[facts.organization_id] = facts
                for ordinal, item in enumerate(envelopes):
                    envelope_rows.append(_envelope_row(item, ordinal))
                    delivery_rows.extend(
                        delivery_row(endpoint_id, item, ordinal, now_ms, "")
                        for endpoint_id, events, start in endpoints
                        if item.position > start and subscribes(events, item.type)
                    )
            # A few statements per batch, not a few per event (psycopg pipelines
            # ``executemany``: one round trip to PostgreSQL for the lot).
            self.tables.executemany(cursor, _INSERT_ENVELOPE, envelope_rows)
            insert_deliveries(self.tables, cursor, delivery_rows)
            created_deliveries = bool(delivery_rows)
            self._schedule_reminders(cursor, list(latest.values()))
            new_position = fresh[-1][0]
            execute(
                cursor,
                "UPDATE integration_tracking SET position = %s WHERE name = %s",
                (new_position, TRACKING_NAME),
            )
        if created_deliveries and self.on_deliveries is not None:
            self.on_deliveries()
        return new_position

    def _announce(
        self, notification: Notification
    ) -> tuple[tuple[IntegrationEvent, ...], OrganizationFacts | None]:
        event = self.app.mapper.to_domain_event(notification)
        if not isinstance(event, OrganizationEvent):
            return (), None
        organization_id = event.originator_id
        version = event.originator_version
        assert isinstance(organization_id, UUID)
        assert isinstance(version, int)
        before = self._before(organization_id, version)
        envelopes, facts, view = announce(event, notification.id, before, self.catalog)
        self._known[organization_id] = _Known(version, facts, event.at, view)
        self._known.move_to_end(organization_id)
        while len(self._known) > FACTS_CACHE_SIZE:
            self._known.popitem(last=False)
        return envelopes, facts

    def _before(self, organization_id: UUID, version: int) -> Before:
        """The organization just before its event ``version``."""
        if version <= 1:
            return Before(None, None)
        known = self._known.get(organization_id)
        if known is not None and known.version == version - 1:
            return Before(known.facts, known.at, known.view)
        aggregate: Organization = self.app.repository.get(
            organization_id, version=version - 1, projector_func=project_organization
        )
        return Before(aggregate.facts, aggregate.modified_on)

    def _subscribed_endpoints(self, cursor: Any) -> list[tuple[str, list[str], int]]:
        self.tables.execute(
            cursor,
            "SELECT id, events, start_position FROM webhook_endpoints "
            "WHERE deleted = 0 AND disabled = 0",
        )
        return [
            (row["id"], json.loads(row["events"]), int(row["start_position"]))
            for row in cursor.fetchall()
        ]

    def _schedule_reminders(self, cursor: Any, changed: Sequence[OrganizationFacts]) -> None:
        """Each changed organization's pending reminders, rebuilt from its facts."""
        for chunk in range(0, len(changed), _CHUNK):
            ids = [facts.organization_id for facts in changed[chunk : chunk + _CHUNK]]
            self.tables.execute(
                cursor,
                "DELETE FROM integration_reminders "  # noqa: S608
                f"WHERE organization_id IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
        self.tables.executemany(
            cursor,
            "INSERT INTO integration_reminders (organization_id, kind, due_ms, until_ms) "
            "VALUES (%s, %s, %s, %s)",
            [
                (facts.organization_id, r.kind, to_ms(r.due_at), to_ms(r.announces))
                for facts in changed
                for r in pending_reminders(facts, self.catalog.bundle)
            ],
        )

    # -- queries ------------------------------------------------------------------

    def reminders_due(self, *, limit: int) -> list[str]:
        """Organizations with a reminder due now (oldest first)."""
        now_ms = to_ms(self.clock.now())
        with self.tables.read() as cursor:
            self.tables.execute(
                cursor,
                "SELECT organization_id, MIN(due_ms) AS due FROM integration_reminders "
                "WHERE due_ms <= %s AND until_ms > %s "
                "GROUP BY organization_id ORDER BY due, organization_id LIMIT %s",
                (now_ms, now_ms, limit),
            )
            return [row["organization_id"] for row in cursor.fetchall()]

    def page(self, *, after: int, types: Sequence[str], limit: int) -> dict[str, Any]:
        """Integration events after a position, oldest first (``GET /v1/events``).

        A page never splits one position's envelopes (it may hold fewer than
        ``limit``), so ``next`` (the last position on the page) is a cursor
        that loses nothing.
        """
        fields: dict[str, list[str]] = {}
        if not 1 <= limit <= MAX_PAGE:
            fields["limit"] = [f"must be 1 to {MAX_PAGE}"]
        if after < 0:
            fields["after"] = ["must not be negative"]
        if fields:
            raise InvalidRequest("The page is invalid.", details={"fields": fields})
        wanted = parse_types(types)
        where = "position > %s"
        params: list[Any] = [after]
        if wanted and "*" not in wanted:
            where += f" AND type IN ({', '.join(['%s'] * len(wanted))})"
            params.extend(wanted)
        with self.tables.read() as cursor:
            self.tables.execute(
                cursor,
                f"SELECT position, envelope FROM integration_events WHERE {where} "  # noqa: S608
                "ORDER BY position, ordinal LIMIT %s",
                (*params, limit + 1),
            )
            rows = list(cursor.fetchall())
            more = len(rows) > limit
            split = more and rows[limit]["position"] == rows[limit - 1]["position"]
            rows = rows[:limit]
            if split:
                last = rows[-1]["position"]
                whole = [r for r in rows if r["position"] != last]
                if whole:
                    rows = whole  # the last position starts the next page
                else:
                    # One position holds more than a page: it comes whole.
                    self.tables.execute(
                        cursor,
                        f"SELECT position, envelope FROM integration_events "  # noqa: S608
                        f"WHERE {where.replace('position > %s', 'position = %s')} "
                        "ORDER BY ordinal",
                        (last, *params[1:]),
                    )
                    rows = list(cursor.fetchall())
        return {
            "events": [json.loads(r["envelope"]) for r in rows],
            "next": int(rows[-1]["position"]) if more and rows else None,
        }

    def envelope(self, event_id: str) -> dict[str, Any] | None:
        with self.tables.read() as cursor:
            self.tables.execute(
                cursor, "SELECT envelope FROM integration_events WHERE id = %s", (event_id,)
            )
            row = cursor.fetchone()
        return None if row is None else dict(json.loads(row["envelope"]))


_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, "
    "organization_id, position, ordinal, replay, status, attempts, next_attempt_ms, "
    "created_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s) "
    "ON CONFLICT (endpoint_id, event_id, replay) DO NOTHING"
)


def delivery_row(
    endpoint_id: str,
    item: IntegrationEvent | dict[str, Any],
    ordinal: int,
    now_ms: int,
    replay: str,
) -> tuple[Any, ...]:
    """The parameters of :data:`_INSERT_DELIVERY` for one envelope to one endpoint."""
    if isinstance(item, IntegrationEvent):
        event_id, event_type = item.id, item.type
        organization_id, position = item.organization_id, item.position
    else:
        event_id, event_type = item["id"], item["type"]
        organization_id, position = item["organization_id"], item["position"]
    return (
        random_id("dlv_", 12),
        endpoint_id,
        event_id,
        event_type,
        organization_id,
        position,
        ordinal,
        replay,
        now_ms,
        now_ms,
    )


def insert_deliveries(tables: SqlTables, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Pending deliveries (:func:`delivery_row`), once per envelope, endpoint and replay."""
    tables.executemany(cursor, _INSERT_DELIVERY, rows)
