"""A process's read-only copy of access rows, kept current by the views' ``NOTIFY``
(PostgreSQL with a worker; ``SUITE_VIEW_CACHE=off`` turns it off).

Every transaction that writes the live views notifies, from inside itself,
``"<tracked position> <ids…>"`` (or ``flush``). A thread per process
``LISTEN``s and, under one lock, evicts those rows and raises
:attr:`ViewCache.position`. The rules that keep a stale row from ever being
served (docs/performance.md, item 18): a row is kept only if it was read at
``position`` or later; ``min_position`` is served only once heard; nothing
is served while the listener is down; rows expire after a TTL regardless.
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
from application.settings import DEFAULT_VIEW_CACHE_TTL as DEFAULT_TTL

if TYPE_CHECKING:
    from application.projections.read_model import AccessReader

log = logging.getLogger(__name__)
MAX_PAYLOAD = 7_900  # NOTIFY payloads stay under 8000 bytes; more ids → ``flush``
FLUSH = "flush"
DEFAULT_SIZE = 10_000
KEEPALIVE_INTERVAL, RECONNECT_DELAY = 5.0, 0.5  # an idle listener checks its connection


def channel_name(prefix: str, schema: str = "") -> str:
    """The views' channel: per schema, as two deployments may share one database."""
    return f"suite_{prefix}" if schema in ("", "public") else f"suite_{schema}_{prefix}"


def change_payload(position: int, organization_ids: Iterable[str] | None) -> str:
    """``"<position> <id> <id> …"``, or ``"<position> flush"`` when too long or unknown."""
    head = str(position)
    if organization_ids is None:
        return f"{head} {FLUSH}"
    payload = " ".join([head, *organization_ids])
    return payload if len(payload) <= MAX_PAYLOAD else f"{head} {FLUSH}"


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
        self._connect, self.channel, self._read_position = connect, channel, read_position
        self.ttl, self.size = ttl, size
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # position moved, listener up/down
        self._rows: dict[str, tuple[OrganizationRow, float]] = {}
        self.position = 0  # the highest position a notification said the views reached
        self.live = False  # the listening connection is up (else nothing is served)
        self.heard = 0  # notifications handled (for tests and probes)
        self._started_in: int | None = None
        self._stop = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None

    def get(self, organization_id: str, min_position: int | None) -> OrganizationRow | None:
        """The cached row if it may be served for ``min_position``, else ``None``."""
        if self._started_in != os.getpid():  # after a fork the parent's thread is gone
            self.start()
            return None
        with self._lock:
            if not self.live or (min_position is not None and min_position > self.position):
                return None
            row, expires = self._rows.get(organization_id, (None, 0.0))
            if row is not None and expires < time.monotonic():
                del self._rows[organization_id]
                return None
            return row

    def offer(self, row: OrganizationRow, tracked: int) -> None:
        """Keep ``row``, read from a snapshot of the views at ``tracked``, if still valid."""
        with self._lock:
            if not self.live or tracked < self.position:
                return  # a change after ``tracked`` may already have been evicted
            while len(self._rows) >= self.size:
                self._rows.pop(next(iter(self._rows)))
            self._rows[row.organization_id] = (row, time.monotonic() + self.ttl)

    def apply(self, payload: str) -> None:
        """Evict what one committed view transaction changed; advance the position."""
        head, _, rest = payload.partition(" ")
        try:
            position: int | None = int(head)
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

    def _went_down(self) -> None:
        with self._lock:
            self.live = False
            self._rows.clear()
            self._changed.notify_all()

    def start(self) -> None:
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._started_in, self.live, self._stop = os.getpid(), False, threading.Event()
            self._rows.clear()
        threading.Thread(target=self._listen, name="view-cache", daemon=True).start()

    def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def wait_until_live(self, timeout: float) -> bool:
        return self._wait(lambda: self.live, timeout)

    def wait_for_heard(self, count: int, timeout: float) -> bool:
        return self._wait(lambda: self.heard >= count, timeout)

    def wait_for_position(self, position: int, timeout: float) -> bool:
        return self._wait(lambda: self.position >= position, timeout)

    def close(self) -> None:
        self._stop.set()
        self._went_down()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()

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
            # Committed from now on is notified; committed before is in this position.
            position = self._read_position(connection)
            with self._lock:
                self._rows.clear()
                self.position, self.live = max(self.position, position), True
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
    """The access reader's interface, answered from a :class:`ViewCache` when it may be;
    a miss is read with the views' position from the same snapshot and offered."""

    def __init__(self, reader: AccessReader, cache: ViewCache) -> None:
        self.reader, self.cache = reader, cache

    def access(self, organization_id: UUID, *, min_position: int | None = None) -> dict[str, Any]:
        row = self.cache.get(str(organization_id), min_position)
        if row is None:
            row, tracked = self.reader.row(organization_id, min_position, with_positions=True)
            if tracked is not None:
                self.cache.offer(row, tracked)
        return self.reader.answer(row)
