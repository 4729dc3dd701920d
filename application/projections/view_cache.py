"""A process-local, read-only copy of access rows, kept current by ``NOTIFY``.

PostgreSQL with a worker only (``SUITE_VIEW_FOLLOWER=worker``; off with
``SUITE_VIEW_CACHE=off``). Every transaction that writes the live views
sends, from inside that transaction (so at its commit, in commit order), a
notification on the views' channel: the position it tracked and the ids of
the organizations whose rows it wrote, or ``flush`` when they do not fit
(or when ``audit rebuild --apply`` replaced every row). A thread per API
process ``LISTEN``s on its own connection and, for each notification,
evicts the rows named (or all of them) and raises :attr:`ViewCache.position`,
both under one lock, so a cached row is always the stored row as of
``position``.

A row enters the cache only if the read that found it saw the views at
``position`` or later (the row and the tracked position come from one
statement's snapshot): a row read before a change whose notification was
already handled would otherwise stay cached, stale. A row read before a
change whose notification is still to come is evicted when it comes.

While the listening connection is not established (start-up, a lost
connection, a reconnect) the cache serves nothing and is emptied: a missed
notification can never leave a row stale. Rows also expire after a safety
TTL (``SUITE_VIEW_CACHE_TTL``, seconds), so that even a fault nobody
foresaw cannot keep a stale row longer than that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg

from application.projections.rows import OrganizationRow

if TYPE_CHECKING:
    from application.projections.read_model import AccessReader

log = logging.getLogger(__name__)

#: NOTIFY payloads must stay under 8000 bytes; ids beyond this budget → ``flush``.
MAX_PAYLOAD = 7_900
FLUSH = "flush"
DEFAULT_TTL = 30.0
DEFAULT_SIZE = 10_000
#: How often an idle listener checks that its connection still answers.
KEEPALIVE_INTERVAL = 5.0
RECONNECT_DELAY = 0.5


def channel_name(prefix: str, schema: str = "") -> str:
    """The channel the views named ``prefix`` (in ``schema``) announce their changes on.

    Notifications are per database: two deployments in one database, each in
    its own schema, must not hear each other's positions.
    """
    if schema in ("", "public"):
        return f"suite_{prefix}"
    return f"suite_{schema}_{prefix}"


def change_payload(position: int, organization_ids: Iterable[str] | None) -> str:
    """``"<position> <id> <id> …"``, or ``"<position> flush"`` when too long or unknown."""
    head = str(position)
    if organization_ids is None:
        return f"{head} {FLUSH}"
    parts = [head]
    size = len(head)
    for organization_id in organization_ids:
        size += len(organization_id) + 1
        if size > MAX_PAYLOAD:
            return f"{head} {FLUSH}"
        parts.append(organization_id)
    return " ".join(parts)


class ViewCache:
    """Access rows valid at :attr:`position`, evicted by the views' notifications."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        channel: str,
        read_position: Callable[[psycopg.Connection[Any]], int],
        *,
        ttl: float = DEFAULT_TTL,
        size: int = DEFAULT_SIZE,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self._read_position = read_position
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        #: Notified whenever the position moves or the listener comes up or goes down.
        self._changed = threading.Condition(self._lock)
        self._rows: dict[str, tuple[OrganizationRow, float]] = {}
        #: The highest position the views are known (by a notification) to have reached.
        self.position = 0
        #: Whether the listening connection is up (else the cache serves nothing).
        self.live = False
        #: Notifications handled so far (what a test or a probe can wait on).
        self.heard = 0
        self._started_in: int | None = None
        self._stop = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None

    # -- reads ------------------------------------------------------------------

    def get(self, organization_id: str, min_position: int | None) -> OrganizationRow | None:
        """The cached row if it may be served for ``min_position``, else ``None``."""
        if self._started_in != os.getpid():
            self.start()
            return None
        with self._lock:
            if not self.live:
                return None
            if min_position is not None and min_position > self.position:
                return None
            entry = self._rows.get(organization_id)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._rows[organization_id]
                return None
            return entry[0]

    def offer(self, row: OrganizationRow, tracked: int) -> None:
        """Keep ``row``, read from a snapshot of the views at ``tracked``, if still valid."""
        with self._lock:
            if not self.live or tracked < self.position:
                return  # a change after ``tracked`` may already have been evicted
            while len(self._rows) >= self.size:
                self._rows.pop(next(iter(self._rows)))
            self._rows[row.organization_id] = (row, time.monotonic() + self.ttl)

    # -- notifications ----------------------------------------------------------

    def apply(self, payload: str) -> None:
        """Evict what one committed view transaction changed; advance the position."""
        head, _, rest = payload.partition(" ")
        try:
            position = int(head)
        except ValueError:
            position = None
        with self._lock:
            if position is None or rest == FLUSH:
                self._rows.clear()
            else:
                for organization_id in rest.split():
                    self._rows.pop(organization_id, None)
            if position is not None and position > self.position:
                self.position = position
            self.heard += 1
            self._changed.notify_all()

    def flush(self) -> None:
        with self._lock:
            self._rows.clear()

    def _went_down(self) -> None:
        with self._lock:
            self.live = False
            self._rows.clear()
            self._changed.notify_all()

    # -- the listening thread ---------------------------------------------------

    def start(self) -> None:
        """Start listening in this process (after a fork, the parent's thread is gone)."""
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            self.live = False
            self._rows.clear()
            self._stop = threading.Event()
        thread = threading.Thread(target=self._listen, name="view-cache", daemon=True)
        thread.start()

    def wait_until_live(self, timeout: float) -> bool:
        """Whether the listener is (or came) up within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.live, timeout)

    def wait_for_heard(self, count: int, timeout: float) -> bool:
        """Whether ``count`` notifications in all were handled within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.heard >= count, timeout)

    def wait_for_position(self, position: int, timeout: float) -> bool:
        """Whether a notification said the views reached ``position`` within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self.position >= position, timeout)

    def close(self) -> None:
        self._stop.set()
        self._went_down()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _listen(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                self._listen_once(stop)
            except Exception as error:  # any failure: serve nothing until re-listening
                self._went_down()
                if not stop.is_set():
                    log.warning("view cache: listener lost (%s); reconnecting", error)
                    stop.wait(RECONNECT_DELAY)

    def _listen_once(self, stop: threading.Event) -> None:
        connection = self._connection = self._connect()
        try:
            connection.execute(f'LISTEN "{self.channel}"')
            # Everything committed from now on is notified; what was committed
            # before is in the position read now.
            position = self._read_position(connection)
            with self._lock:
                self._rows.clear()
                self.position = max(self.position, position)
                self.live = True
                self._changed.notify_all()
            idle_since = time.monotonic()
            while not stop.is_set():
                for notify in connection.notifies(timeout=0.5):
                    self.apply(notify.payload)
                    idle_since = time.monotonic()
                if time.monotonic() - idle_since >= KEEPALIVE_INTERVAL:
                    connection.execute("SELECT 1")
                    idle_since = time.monotonic()
        finally:
            self._went_down()
            with contextlib.suppress(Exception):
                connection.close()


class CachedAccessReader:
    """The access reader's interface, answered from a :class:`ViewCache` when it may be.

    A miss (or a row the cache may not serve for ``min_position``) is read by
    the wrapped reader with the views' position from the same snapshot, and
    offered to the cache at that position.
    """

    def __init__(self, reader: AccessReader, cache: ViewCache) -> None:
        self.reader = reader
        self.cache = cache

    def access(self, organization_id: UUID, *, min_position: int | None = None) -> dict[str, Any]:
        row = self.cache.get(str(organization_id), min_position)
        if row is None:
            row, tracked = self.reader.row(organization_id, min_position, with_positions=True)
            if tracked is not None:
                self.cache.offer(row, tracked)
        return self.reader.answer(row)
