"""Sending deliveries: at least once, in log order per organization per endpoint.

- **Which**: a pending delivery is due when its next attempt has come (by the
  service clock, so the test clock drives retries), its endpoint is enabled,
  and no earlier delivery (log position, then envelope order) of the same
  organization to the same endpoint is still pending — a later event waits
  until the earlier one is delivered.
- **Claims**: a delivery is leased (wall-clock milliseconds) by one
  dispatcher with a compare-and-set ``UPDATE`` before it is sent, so any
  number of dispatchers (threads, processes, machines on PostgreSQL) never
  send one delivery twice at the same time; a dispatcher that dies mid-send
  leaves a lease that runs out, and the delivery is sent again (at least
  once: receivers de-duplicate by ``webhook-id``).
- **Isolation**: at most ``per_endpoint`` deliveries of one endpoint are in
  flight in a dispatcher, each on a thread of its pool, so a slow or dead
  endpoint holds its own slots only and never delays another.
- **Retries**: :data:`RETRY_SCHEDULE` with ±10 % jitter, then every 12 h;
  an endpoint whose deliveries have failed for :data:`DISABLE_AFTER`
  (since its last success) is disabled, with the reason shown by ``GET``.
"""

from __future__ import annotations

import logging
import queue
import random
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from application.clocks import SystemClock
from application.sql_tables import SqlTables
from application.webhooks.sender import AttemptOutcome, HttpSender
from application.webhooks.signing import signed_headers
from application.webhooks.tables import iso_ms, to_ms
from application.webhooks.url_guard import UrlGuard
from domain.clock import Clock
from domain.errors import DomainError

log = logging.getLogger(__name__)

#: Seconds before the 1st, 2nd, … retry; then :data:`LAST_RETRY_INTERVAL` for ever.
RETRY_SCHEDULE = (5, 30, 120, 600, 3600, 21600)
LAST_RETRY_INTERVAL = 43200
JITTER = 0.1
DISABLE_AFTER = timedelta(days=3)
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_PER_ENDPOINT = 8
DEFAULT_POOL_SIZE = 16
CLAIM_BATCH = 200


def retry_delay(failed_attempts: int, rng: random.Random) -> float:
    """Seconds until the next attempt after ``failed_attempts`` failures (≥ 1)."""
    index = failed_attempts - 1
    base = RETRY_SCHEDULE[index] if index < len(RETRY_SCHEDULE) else LAST_RETRY_INTERVAL
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: str
    endpoint_id: str
    event_id: str
    url: str
    signing_secrets: tuple[str, ...]
    body: str


_DUE = """
SELECT d.id, d.endpoint_id, d.event_id, e.url, e.secret, e.previous_secret,
       e.previous_secret_until_ms, i.envelope
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
JOIN integration_events i ON i.id = d.event_id
WHERE d.status = 'pending' AND d.next_attempt_ms <= %s
  AND (d.lease_until_ms IS NULL OR d.lease_until_ms < %s)
  AND e.disabled = 0 AND e.deleted = 0
  AND NOT EXISTS (
    SELECT 1 FROM webhook_deliveries p
    WHERE p.endpoint_id = d.endpoint_id AND p.organization_id = d.organization_id
      AND p.status = 'pending'
      AND (p.position < d.position
           OR (p.position = d.position AND p.ordinal < d.ordinal)
           OR (p.position = d.position AND p.ordinal = d.ordinal AND p.id < d.id)))
ORDER BY d.next_attempt_ms, d.position, d.ordinal
LIMIT %s
"""


class WebhookDispatcher:
    def __init__(
        self,
        tables: SqlTables,
        clock: Clock,
        guard: UrlGuard,
        *,
        sender: HttpSender | None = None,
        wall_clock: Clock | None = None,
        per_endpoint: int = DEFAULT_PER_ENDPOINT,
        pool_size: int = DEFAULT_POOL_SIZE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.tables = tables
        self.clock = clock
        self.guard = guard
        self.sender = sender or HttpSender()
        self.wall_clock = wall_clock or SystemClock()
        self.per_endpoint = per_endpoint
        self.pool_size = pool_size
        self.lease_ms = int(lease_seconds * 1000)
        self.rng = rng or random.Random()
        self.owner = f"dispatcher_{secrets.token_hex(6)}"
        self._wakeup = threading.Event()

    def wake(self) -> None:
        self._wakeup.set()

    # -- claiming -----------------------------------------------------------------

    def claim(self, capacity: Callable[[str], int]) -> list[Claimed]:
        """Lease due deliveries, at most ``capacity(endpoint_id)`` per endpoint."""
        now_ms = to_ms(self.clock.now())
        wall_ms = to_ms(self.wall_clock.now())
        claimed: list[Claimed] = []
        taken: defaultdict[str, int] = defaultdict(int)
        with self.tables.transaction() as cursor:
            execute = self.tables.execute
            execute(cursor, _DUE, (now_ms, wall_ms, CLAIM_BATCH))
            for row in cursor.fetchall():
                endpoint_id = row["endpoint_id"]
                if taken[endpoint_id] >= capacity(endpoint_id):
                    continue
                execute(
                    cursor,
                    "UPDATE webhook_deliveries SET lease_until_ms = %s, lease_owner = %s "
                    "WHERE id = %s AND status = 'pending' "
                    "AND (lease_until_ms IS NULL OR lease_until_ms < %s)",
                    (wall_ms + self.lease_ms, self.owner, row["id"], wall_ms),
                )
                # Not ``rowcount``: the library's SQLite cursor does not offer it.
                execute(
                    cursor,
                    "SELECT lease_owner FROM webhook_deliveries WHERE id = %s",
                    (row["id"],),
                )
                holder = cursor.fetchone()
                if holder is None or holder["lease_owner"] != self.owner:
                    continue  # another dispatcher holds it
                signing = [row["secret"]]
                until = row["previous_secret_until_ms"]
                if row["previous_secret"] and until is not None and until > now_ms:
                    signing.append(row["previous_secret"])
                taken[endpoint_id] += 1
                claimed.append(
                    Claimed(
                        delivery_id=row["id"],
                        endpoint_id=endpoint_id,
                        event_id=row["event_id"],
                        url=row["url"],
                        signing_secrets=tuple(signing),
                        body=row["envelope"],
                    )
                )
        return claimed

    # -- sending ------------------------------------------------------------------

    def attempt(self, claimed: Claimed) -> AttemptOutcome:
        """One signed POST (after the URL guard's check); nothing recorded."""
        try:
            target = self.guard.resolve(claimed.url)
        except DomainError as refusal:
            return AttemptOutcome(False, None, 0, refusal.message)
        headers = signed_headers(
            claimed.signing_secrets, claimed.event_id, self.wall_clock.now(), claimed.body
        )
        return self.sender.post(target, claimed.body.encode("utf-8"), headers)

    def send(self, claimed: Claimed) -> AttemptOutcome:
        """One attempt, its outcome recorded (and the lease released)."""
        outcome = self.attempt(claimed)
        self.record([(claimed, outcome)])
        return outcome

    def record(self, outcomes: Sequence[tuple[Claimed, AttemptOutcome]]) -> None:
        """Record attempts' outcomes in one transaction (leases released)."""
        now_ms = to_ms(self.clock.now())
        with self.tables.transaction() as cursor:
            for claimed, outcome in outcomes:
                self._record_one(cursor, claimed, outcome, now_ms)

    def _record_one(
        self, cursor: Any, claimed: Claimed, outcome: AttemptOutcome, now_ms: int
    ) -> None:
        execute = self.tables.execute
        execute(
            cursor,
            "SELECT attempts FROM webhook_deliveries WHERE id = %s AND lease_owner = %s",
            (claimed.delivery_id, self.owner),
        )
        row = cursor.fetchone()
        if row is None:
            return  # our lease ran out and another dispatcher took over
        attempts = int(row["attempts"]) + 1
        if outcome.succeeded:
            status, next_ms, delivered_ms = "delivered", None, now_ms
        else:
            delay_ms = int(retry_delay(attempts, self.rng) * 1000)
            status, next_ms, delivered_ms = "pending", now_ms + delay_ms, None
        execute(
            cursor,
            "UPDATE webhook_deliveries SET status = %s, attempts = %s, "
            "next_attempt_ms = %s, delivered_ms = %s, last_response_code = %s, "
            "last_latency_ms = %s, last_error = %s, last_attempt_ms = %s, "
            "lease_until_ms = NULL, lease_owner = NULL WHERE id = %s",
            (
                status,
                attempts,
                next_ms,
                delivered_ms,
                outcome.response_code,
                outcome.latency_ms,
                outcome.error,
                now_ms,
                claimed.delivery_id,
            ),
        )
        if outcome.succeeded:
            execute(
                cursor,
                "UPDATE webhook_endpoints SET failing_since_ms = NULL "
                "WHERE id = %s AND failing_since_ms IS NOT NULL",
                (claimed.endpoint_id,),
            )
        else:
            self._note_failure(cursor, claimed.endpoint_id, now_ms, outcome)

    def _note_failure(
        self, cursor: Any, endpoint_id: str, now_ms: int, outcome: AttemptOutcome
    ) -> None:
        execute = self.tables.execute
        execute(
            cursor,
            "UPDATE webhook_endpoints SET failing_since_ms = %s "
            "WHERE id = %s AND failing_since_ms IS NULL",
            (now_ms, endpoint_id),
        )
        execute(
            cursor,
            "SELECT failing_since_ms FROM webhook_endpoints WHERE id = %s",
            (endpoint_id,),
        )
        row = cursor.fetchone()
        since = None if row is None else row["failing_since_ms"]
        if since is None or now_ms - int(since) < DISABLE_AFTER.total_seconds() * 1000:
            return
        reason = (
            f"deliveries have failed since {iso_ms(int(since))} (3 days); "
            f"last error: {outcome.error or 'unknown'}"
        )
        execute(
            cursor,
            "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = %s WHERE id = %s",
            (reason, endpoint_id),
        )
        log.warning("webhooks: endpoint %s disabled: %s", endpoint_id, reason)

    # -- loops --------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Send every due delivery in this thread, in order, until none is due.

        For ``suitesub worker --once`` and tests; returns how many attempts ran.
        """
        attempts = 0
        while True:
            batch = self.claim(lambda _endpoint: 1)
            if not batch:
                return attempts
            for claimed in batch:
                self.send(claimed)
                attempts += 1

    def run(self, stop: threading.Event, *, poll_interval: float = 0.5) -> None:
        """Dispatch on a thread pool until ``stop`` is set.

        Pool threads only send; this loop records what they finished and
        claims what is due next, both in one transaction per turn, so the
        database sees a few commits per turn rather than two per delivery.
        """
        finished: queue.SimpleQueue[tuple[Claimed, AttemptOutcome]] = queue.SimpleQueue()
        in_flight: defaultdict[str, int] = defaultdict(int)

        def attempt_in_pool(claimed: Claimed) -> None:
            try:
                outcome = self.attempt(claimed)
            except Exception as error:  # the outcome must be recorded whatever happened
                log.exception("webhooks: delivery %s failed unexpectedly", claimed.delivery_id)
                outcome = AttemptOutcome(False, None, 0, f"{type(error).__name__}: {error}")
            finished.put((claimed, outcome))
            self._wakeup.set()

        with ThreadPoolExecutor(self.pool_size, thread_name_prefix="webhook") as pool:
            while True:
                self._wakeup.clear()  # before draining: a later set() wakes the wait below
                outcomes = []
                while not finished.empty():
                    outcomes.append(finished.get())
                try:
                    if outcomes:
                        self.record(outcomes)
                except Exception:
                    log.exception("webhooks: recording outcomes failed; retrying")
                    for item in outcomes:
                        finished.put(item)
                    stop.wait(poll_interval)
                    continue
                for claimed, _outcome in outcomes:
                    in_flight[claimed.endpoint_id] -= 1
                batch: list[Claimed] = []
                if stop.is_set():
                    if not any(in_flight.values()):
                        return
                else:
                    try:
                        batch = self.claim(lambda e: self.per_endpoint - in_flight[e])
                    except Exception:
                        log.exception("webhooks: claiming deliveries failed; retrying")
                for claimed in batch:
                    in_flight[claimed.endpoint_id] += 1
                    pool.submit(attempt_in_pool, claimed)
                self._wakeup.wait(poll_interval)
