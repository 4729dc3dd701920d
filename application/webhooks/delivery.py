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
import os
import queue
import random
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from application.clocks import SystemClock
from application.reconnect import CONNECTION_ERRORS, Backoff, first_line
from application.sql_tables import SqlTables
from application.webhooks.sender import AttemptOutcome, HttpSender
from application.webhooks.signing import signed_headers
from application.webhooks.tables import iso_ms, to_ms
from application.webhooks.url_guard import Target, UrlGuard
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
#: A dispatcher leases up to this many deliveries of one endpoint ahead of
#: sending them, so its lanes never wait on the database between two sends.
CLAIM_AHEAD = CLAIM_BATCH
#: Deliveries a lane sends before it lets other lanes have its pool thread.
LANE_TURN = 16
#: A lane reuses the URL guard's checked address for the deliveries of its turn
#: to one URL for at most this long (a resolution per delivery released and
#: took back the interpreter lock once more per send: webhook_delivery).
RESOLVED_REUSE_SECONDS = 1.0
#: A queued delivery is sent only while its lease outlasts the attempt's timeout
#: by this much; otherwise it is given back unsent.
LEASE_MARGIN_SECONDS = 5.0


#: ``SUITE_WEBHOOKS_LEASE_SECONDS`` bounds (a dead dispatcher's deliveries wait
#: this long before another sends them; keep it well above the 10 s timeout).
MIN_LEASE_SECONDS = 1.0


def lease_seconds_from_env() -> float:
    """``SUITE_WEBHOOKS_LEASE_SECONDS`` (default 60): how long a claim holds a delivery."""
    raw = os.environ.get("SUITE_WEBHOOKS_LEASE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        msg = f"SUITE_WEBHOOKS_LEASE_SECONDS must be a number of seconds, not {raw!r}"
        raise ValueError(msg) from None
    if not MIN_LEASE_SECONDS <= seconds <= 3600:
        msg = f"SUITE_WEBHOOKS_LEASE_SECONDS must be 1 to 3600, not {raw}"
        raise ValueError(msg)
    return seconds


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
    #: Wall-clock milliseconds until which this dispatcher holds the delivery.
    lease_until_ms: int = 0


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: str
    url: str
    signing_secrets: tuple[str, ...]
    #: Its ``failing_since`` was set when read (a success must clear it).
    failing: bool = False


_ENDPOINTS = """
SELECT id, url, secret, previous_secret, previous_secret_until_ms, failing_since_ms
FROM webhook_endpoints WHERE disabled = 0 AND deleted = 0
"""

#: One endpoint's due deliveries, oldest first: the heads of its organizations'
#: lines (no earlier delivery of the organization to the endpoint is pending).
#: The index ``webhook_deliveries_due_by_endpoint`` yields them in this order,
#: so the ``LIMIT`` stops the scan: a turn costs what it claims, not what waits.
#: The head test is a correlated scalar subquery (one probe of the index
#: ``webhook_deliveries_line`` per candidate), not ``NOT EXISTS``: PostgreSQL
#: turns that into an anti-join, and on a table not yet analysed (a fresh
#: backlog) it scanned the endpoint's whole backlog for every candidate —
#: 120 ms per claim of 200 out of 3 000 in the webhook_delivery benchmark,
#: 1.5 ms with the probe.
_DUE = """
SELECT d.id, d.event_id, i.envelope
FROM webhook_deliveries d
JOIN integration_events i ON i.id = d.event_id
WHERE d.endpoint_id = %s AND d.status = 'pending' AND d.next_attempt_ms <= %s
  AND (d.lease_until_ms IS NULL OR d.lease_until_ms < %s)
  AND d.id = (
    SELECT p.id FROM webhook_deliveries p
    WHERE p.endpoint_id = d.endpoint_id AND p.organization_id = d.organization_id
      AND p.status = 'pending'
    ORDER BY p.position, p.ordinal, p.id
    LIMIT 1)
ORDER BY d.next_attempt_ms, d.position, d.ordinal
LIMIT %s
"""


class CheckedUrl:
    """One lane turn's last URL guard check: the URL and the target it allowed."""

    def __init__(self) -> None:
        self._url: str | None = None
        self._target: Target | None = None
        self._at = 0.0

    def target(self, url: str, guard: UrlGuard) -> Target:
        now = time.monotonic()
        if self._target is None or url != self._url or now - self._at > RESOLVED_REUSE_SECONDS:
            self._url, self._target = url, None
            self._target = guard.resolve(url)  # a refusal raises and is not kept
            self._at = now
        return self._target


def _signing_secrets(row: Any, now_ms: int) -> tuple[str, ...]:
    """The endpoint's secret, and the previous one while its 24 h overlap runs."""
    until = row["previous_secret_until_ms"]
    if row["previous_secret"] and until is not None and until > now_ms:
        return (row["secret"], row["previous_secret"])
    return (row["secret"],)


def _in(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


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
        #: The enabled endpoints as the last claim read them.
        self._enabled: dict[str, _Endpoint] = {}

    def wake(self) -> None:
        self._wakeup.set()

    # -- claiming -----------------------------------------------------------------

    def claim(self, capacity: Callable[[str], int]) -> list[Claimed]:
        """Lease due deliveries, at most ``capacity(endpoint_id)`` per endpoint."""
        now_ms = to_ms(self.clock.now())  # before the transaction: the test clock reads a table
        with self.tables.transaction() as cursor:
            return self._claim(cursor, capacity, now_ms)

    def _endpoints(self, cursor: Any, now_ms: int) -> list[_Endpoint]:
        """The enabled endpoints, as this turn's claim and record see them."""
        self.tables.execute(cursor, _ENDPOINTS)
        endpoints = [
            _Endpoint(
                row["id"],
                row["url"],
                _signing_secrets(row, now_ms),
                row["failing_since_ms"] is not None,
            )
            for row in cursor.fetchall()
        ]
        self._enabled = {endpoint.id: endpoint for endpoint in endpoints}
        return endpoints

    def _claim(
        self,
        cursor: Any,
        capacity: Callable[[str], int],
        now_ms: int,
        endpoints: Sequence[_Endpoint] | None = None,
    ) -> list[Claimed]:
        wall_ms = to_ms(self.wall_clock.now())
        lease_until = wall_ms + self.lease_ms
        execute = self.tables.execute
        if endpoints is None:
            endpoints = self._endpoints(cursor, now_ms)
        claimed: list[Claimed] = []
        for endpoint in endpoints:
            wanted = min(capacity(endpoint.id), CLAIM_BATCH)
            if wanted <= 0:
                continue
            execute(cursor, _DUE, (endpoint.id, now_ms, wall_ms, wanted))
            due = {row["id"]: row for row in cursor.fetchall()}
            if not due:
                continue
            ids = list(due)
            # Compare-and-set for the whole batch, returning the rows we now hold
            # (one round trip; a read-back after the update was a second one).
            execute(
                cursor,
                "UPDATE webhook_deliveries SET lease_until_ms = %s, lease_owner = %s "  # noqa: S608
                f"WHERE id IN ({_in(ids)}) AND status = 'pending' "
                "AND (lease_until_ms IS NULL OR lease_until_ms < %s) RETURNING id",
                (lease_until, self.owner, *ids, wall_ms),
            )
            held = {row["id"] for row in cursor.fetchall()}
            claimed.extend(
                Claimed(
                    delivery_id=delivery_id,
                    endpoint_id=endpoint.id,
                    event_id=row["event_id"],
                    url=endpoint.url,
                    signing_secrets=endpoint.signing_secrets,
                    body=row["envelope"],
                    lease_until_ms=lease_until,
                )
                for delivery_id, row in due.items()
                if delivery_id in held  # the others: another dispatcher holds them
            )
        return claimed

    # -- sending ------------------------------------------------------------------

    def attempt(self, claimed: Claimed, checked: CheckedUrl | None = None) -> AttemptOutcome:
        """One signed POST (after the URL guard's check); nothing recorded.

        ``checked``: a lane's last check of a URL, reused while it is fresh
        (:data:`RESOLVED_REUSE_SECONDS`) for the same URL and renewed otherwise.
        """
        try:
            if checked is None:
                target = self.guard.resolve(claimed.url)
            else:
                target = checked.target(claimed.url, self.guard)
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

    def record(self, outcomes: Sequence[tuple[Claimed, AttemptOutcome | None]]) -> None:
        """Record attempts' outcomes in one transaction (leases released)."""
        now_ms = to_ms(self.clock.now())  # before the transaction: the test clock reads a table
        with self.tables.transaction() as cursor:
            self._record(cursor, outcomes, now_ms)

    def _record(
        self,
        cursor: Any,
        outcomes: Sequence[tuple[Claimed, AttemptOutcome | None]],
        now_ms: int,
        enabled: Mapping[str, _Endpoint] | None = None,
    ) -> set[str]:
        """Record a turn's outcomes: a few statements, not a few per delivery;
        the endpoints this disabled (3 days of failures).

        An outcome of ``None``: not attempted (given back before its lease ran
        short). Every statement is conditioned on our lease, so it is a no-op
        for a delivery whose lease ran out and that another dispatcher took.
        ``enabled``: the endpoints as read in this transaction; a success then
        clears ``failing_since`` only where it was set (or the endpoint is not
        among them), which spares the webhook_delivery benchmark's turns a
        statement that changed nothing.
        """
        given_back = [(c.delivery_id, self.owner) for c, o in outcomes if o is None]
        delivered = [
            (now_ms, o.response_code, o.latency_ms, now_ms, c.delivery_id, self.owner)
            for c, o in outcomes
            if o is not None and o.succeeded
        ]
        failed = [(c, o) for c, o in outcomes if o is not None and not o.succeeded]
        self.tables.executemany(
            cursor,
            "UPDATE webhook_deliveries SET lease_until_ms = NULL, lease_owner = NULL "
            "WHERE id = %s AND lease_owner = %s",
            given_back,
        )
        self.tables.executemany(
            cursor,
            "UPDATE webhook_deliveries SET status = 'delivered', "
            "attempts = attempts + 1, next_attempt_ms = NULL, delivered_ms = %s, "
            "last_response_code = %s, last_latency_ms = %s, last_error = NULL, "
            "last_attempt_ms = %s, lease_until_ms = NULL, lease_owner = NULL "
            "WHERE id = %s AND lease_owner = %s",
            delivered,
        )
        # ``failing_since`` is the first failure after the endpoint's last success.
        # Within one turn (one instant) successes count first, then failures in
        # order, then an endpoint whose last outcome succeeded is clear again.
        succeeded = {c.endpoint_id for c, o in outcomes if o is not None and o.succeeded}
        last: dict[str, bool] = {c.endpoint_id: o.succeeded for c, o in outcomes if o is not None}
        failed_here = {c.endpoint_id for c, _o in failed}

        def maybe_failing(endpoint_id: str) -> bool:
            known = None if enabled is None else enabled.get(endpoint_id)
            return known is None or known.failing

        clear = [(e,) for e in sorted(succeeded) if maybe_failing(e)]
        again = [(e,) for e in sorted(succeeded & failed_here) if last[e]]
        reset = (
            "UPDATE webhook_endpoints SET failing_since_ms = NULL "
            "WHERE id = %s AND failing_since_ms IS NOT NULL"
        )
        self.tables.executemany(cursor, reset, clear)
        disabled: set[str] = set()
        for claimed, outcome in failed:
            if self._record_failure(cursor, claimed, outcome, now_ms):
                disabled.add(claimed.endpoint_id)
        self.tables.executemany(cursor, reset, again)
        return disabled

    def _record_failure(
        self, cursor: Any, claimed: Claimed, outcome: AttemptOutcome, now_ms: int
    ) -> bool:
        """Record one failed attempt; whether it disabled the endpoint."""
        execute = self.tables.execute
        execute(
            cursor,
            "SELECT attempts FROM webhook_deliveries WHERE id = %s AND lease_owner = %s",
            (claimed.delivery_id, self.owner),
        )
        row = cursor.fetchone()
        if row is None:
            return False  # our lease ran out and another dispatcher took over
        attempts = int(row["attempts"]) + 1
        delay_ms = int(retry_delay(attempts, self.rng) * 1000)
        execute(
            cursor,
            "UPDATE webhook_deliveries SET attempts = %s, next_attempt_ms = %s, "
            "last_response_code = %s, last_latency_ms = %s, last_error = %s, "
            "last_attempt_ms = %s, lease_until_ms = NULL, lease_owner = NULL WHERE id = %s",
            (
                attempts,
                now_ms + delay_ms,
                outcome.response_code,
                outcome.latency_ms,
                outcome.error,
                now_ms,
                claimed.delivery_id,
            ),
        )
        return self._note_failure(cursor, claimed.endpoint_id, now_ms, outcome)

    def _note_failure(
        self, cursor: Any, endpoint_id: str, now_ms: int, outcome: AttemptOutcome
    ) -> bool:
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
            return False
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
        return True

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
            unsent = {claimed.delivery_id: claimed for claimed in batch}
            try:
                for claimed in batch:
                    self.send(claimed)
                    del unsent[claimed.delivery_id]
                    attempts += 1
            finally:
                # Whatever stopped this batch, the rest go back at once: another
                # dispatcher takes them now, not when their leases run out.
                self.give_back(unsent.values())

    def give_back(self, claims: Iterable[Claimed]) -> None:
        """Release our leases of ``claims`` (not recorded, whether attempted or not).

        A dispatcher that stops, or fails between claiming and recording,
        calls this so that another takes the deliveries at once. A delivery
        that was attempted is then sent again (at least once). If the
        database cannot be reached the leases simply run out.
        """
        ids = [claimed.delivery_id for claimed in claims]
        try:
            with self.tables.transaction() as cursor:
                for start in range(0, len(ids), CLAIM_BATCH):
                    chunk = ids[start : start + CLAIM_BATCH]
                    self.tables.execute(
                        cursor,
                        "UPDATE webhook_deliveries SET lease_until_ms = NULL, "  # noqa: S608
                        f"lease_owner = NULL WHERE id IN ({_in(chunk)}) AND lease_owner = %s",
                        (*chunk, self.owner),
                    )
        except Exception as error:
            log.warning(
                "webhooks: could not give back %d leases (%s); they run out instead",
                len(ids),
                first_line(error),
            )

    def _give_back_stale(
        self,
        queues: dict[str, deque[Claimed]],
        finished: queue.SimpleQueue[tuple[Claimed, AttemptOutcome | None]],
    ) -> None:
        """Queued deliveries of an endpoint disabled, deleted, moved to another URL
        or given a new secret since they were claimed go back unsent (the next
        claim takes them again with the endpoint as it is now)."""
        stale = False
        for endpoint_id, waiting in queues.items():
            now = self._enabled.get(endpoint_id)
            keep = [
                claimed
                for claimed in waiting
                if now is not None
                and claimed.url == now.url
                and claimed.signing_secrets == now.signing_secrets
            ]
            if len(keep) == len(waiting):
                continue
            for claimed in waiting:
                if claimed not in keep:
                    finished.put((claimed, None))
            waiting.clear()
            waiting.extend(keep)
            stale = True
        if stale:
            self._wakeup.set()

    def _hand_back(
        self,
        held: dict[str, Claimed],
        finished: queue.SimpleQueue[tuple[Claimed, AttemptOutcome | None]],
    ) -> None:
        """At the loop's end (stopped or failed): record the attempts that were
        made (so they are not sent again) and give back at once every other
        delivery still held, so another dispatcher need not wait out the lease."""
        attempted: list[tuple[Claimed, AttemptOutcome | None]] = []
        while not finished.empty():
            claimed, outcome = finished.get()
            if outcome is not None and claimed.delivery_id in held:
                attempted.append((claimed, outcome))
        if attempted:
            try:
                self.record(attempted)
            except Exception as error:
                log.warning(
                    "webhooks: could not record %d attempts at the end (%s); they are sent again",
                    len(attempted),
                    first_line(error),
                )
            else:
                for claimed, _outcome in attempted:
                    held.pop(claimed.delivery_id, None)
        if held:
            self.give_back(list(held.values()))

    def run(self, stop: threading.Event, *, poll_interval: float = 0.5) -> None:
        """Dispatch on a thread pool until ``stop`` is set.

        Each turn of this loop records what the pool finished and claims what
        is due next in **one** transaction, claiming ahead (up to
        :data:`CLAIM_AHEAD` deliveries per endpoint) into the endpoint's
        queue. Up to ``per_endpoint`` lanes per endpoint, each on a pool
        thread, send from that queue one after another without
        waiting for the database, so sending and recording overlap, and the
        outcomes a turn records accumulate while the turn before commits. A
        queued delivery whose lease would run out before its attempt could
        finish is given back unsent (another dispatcher may take it then).

        However the loop ends — ``stop``, or an exception out of a turn — the
        lanes send nothing more, the attempts in flight finish and are
        recorded, and every delivery still claimed is given back at once.
        """
        finished: queue.SimpleQueue[tuple[Claimed, AttemptOutcome | None]] = queue.SimpleQueue()
        queues: defaultdict[str, deque[Claimed]] = defaultdict(deque)
        lanes: defaultdict[str, int] = defaultdict(int)
        #: Claimed and not yet recorded, per endpoint (this loop's own count).
        outstanding: defaultdict[str, int] = defaultdict(int)
        #: Claimed and not yet recorded, by delivery id: what the end gives back.
        held: dict[str, Claimed] = {}
        #: Set when the loop ends (stopped or failed): lanes then send nothing more.
        halt = threading.Event()
        lock = threading.Lock()
        ahead = CLAIM_AHEAD
        # Time a queued delivery's lease must still have to be sent (never more
        # than half the lease, so a short lease still lets deliveries go).
        margin_ms = min(
            int((self.sender.timeout + LEASE_MARGIN_SECONDS) * 1000), self.lease_ms // 2
        )

        def lane(endpoint_id: str) -> None:
            checked = CheckedUrl()
            for _turn in range(LANE_TURN):
                with lock:
                    waiting = queues[endpoint_id]
                    if not waiting:
                        lanes[endpoint_id] -= 1
                        return
                    claimed = waiting.popleft()
                outcome: AttemptOutcome | None = None
                if (
                    stop.is_set()
                    or halt.is_set()
                    or to_ms(self.wall_clock.now()) + margin_ms > claimed.lease_until_ms
                ):
                    pass  # given back unsent
                else:
                    try:
                        outcome = self.attempt(claimed, checked)
                    except Exception as error:  # the outcome must be recorded whatever happened
                        log.exception(
                            "webhooks: delivery %s failed unexpectedly", claimed.delivery_id
                        )
                        outcome = AttemptOutcome(False, None, 0, f"{type(error).__name__}: {error}")
                finished.put((claimed, outcome))
                self._wakeup.set()
            # Its turn is over: back of the pool's line, so other endpoints' lanes
            # waiting for a thread go first (the lane count is unchanged). Work
            # still queued is outstanding, so the loop (and the pool) still runs.
            with lock:
                if not queues[endpoint_id]:
                    lanes[endpoint_id] -= 1
                    return
                if halt.is_set():
                    return  # the pool is closing; what is queued is given back
                pool.submit(lane, endpoint_id)

        def turns() -> None:
            """Record and claim, one transaction per turn, until stopped with
            nothing outstanding (or the database is lost while stopping)."""
            backoff = Backoff()
            while True:
                self._wakeup.clear()  # before draining: a later set() wakes the wait below
                stopping = stop.is_set()
                if stopping:
                    # What waits in the queues goes back now, not when a lane (maybe
                    # held by a slow receiver) comes round to it.
                    with lock:
                        for waiting in queues.values():
                            for claimed in waiting:
                                finished.put((claimed, None))
                            waiting.clear()
                outcomes = []
                while not finished.empty():
                    outcomes.append(finished.get())
                claimed_now: list[Claimed] = []
                try:
                    now_ms = to_ms(self.clock.now())  # outside: the test clock reads a table
                    with self.tables.transaction() as cursor:
                        # One read of the endpoints serves the record and the claim.
                        endpoints = self._endpoints(cursor, now_ms)
                        if outcomes:
                            enabled = {endpoint.id: endpoint for endpoint in endpoints}
                            disabled = self._record(cursor, outcomes, now_ms, enabled)
                            if disabled:
                                endpoints = [e for e in endpoints if e.id not in disabled]
                                self._enabled = {e.id: e for e in endpoints}
                        if not stopping:
                            claimed_now = self._claim(
                                cursor, lambda e: ahead - outstanding[e], now_ms, endpoints
                            )
                except CONNECTION_ERRORS as error:
                    # A lost connection is waited out (the pool hands out a new
                    # one); the outcomes are recorded on the next turn.
                    delay = backoff.next_delay()
                    log.warning(
                        "webhooks: dispatcher lost the database connection (%s); "
                        "retrying in %.1f s",
                        first_line(error),
                        delay,
                    )
                    for item in outcomes:
                        finished.put(item)
                    if stopping:
                        return  # not waited out when stopping: the end gives back what it can
                    stop.wait(delay)
                    continue
                except Exception:
                    log.exception("webhooks: recording or claiming deliveries failed; retrying")
                    for item in outcomes:
                        finished.put(item)
                    if stopping:
                        return
                    stop.wait(poll_interval)
                    continue
                except BaseException:
                    for item in outcomes:
                        finished.put(item)  # the end records them
                    raise
                backoff.reset()
                for claimed, _outcome in outcomes:
                    outstanding[claimed.endpoint_id] -= 1
                    held.pop(claimed.delivery_id, None)
                if stopping and not any(outstanding.values()):
                    return
                with lock:
                    if not stopping:
                        self._give_back_stale(queues, finished)
                    for claimed in claimed_now:
                        held[claimed.delivery_id] = claimed
                        outstanding[claimed.endpoint_id] += 1
                        queues[claimed.endpoint_id].append(claimed)
                    for endpoint_id, waiting in queues.items():
                        # A lane with nothing left to take ends itself: over-starting is cheap.
                        for _ in range(min(self.per_endpoint - lanes[endpoint_id], len(waiting))):
                            lanes[endpoint_id] += 1
                            pool.submit(lane, endpoint_id)
                self._wakeup.wait(poll_interval)

        try:
            with ThreadPoolExecutor(self.pool_size, thread_name_prefix="webhook") as pool:
                try:
                    turns()
                finally:
                    with lock:
                        halt.set()  # before the pool's exit waits for the lanes
        finally:
            self._hand_back(held, finished)
