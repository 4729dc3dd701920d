"""Creating tables safely when several processes start at once.

``CREATE TABLE IF NOT EXISTS`` is not enough on PostgreSQL: two sessions
creating the same table, type or function at the same moment can fail on
the catalogue's unique indexes ("tuple concurrently updated", duplicate
``pg_type`` rows). Every process therefore creates its tables while holding
one session-level advisory lock; the first creates, the others then find
everything in place. SQLite serialises DDL by itself.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg

SCHEMA_LOCK_KEY = zlib.crc32(b"suite-subscriptions:schema")

# The lock is held by a session; nested use in one thread reuses it (a second
# session asking for the same lock would wait for itself).
_held = threading.local()


def _depth() -> int:
    depth: int = getattr(_held, "depth", 0)
    return depth


@contextmanager
def schema_lock(env: Mapping[str, str]) -> Iterator[None]:
    """Hold the schema advisory lock (PostgreSQL only; a no-op elsewhere)."""
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres" or _depth():
        _held.depth = _depth() + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    connection = psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env.get("POSTGRES_HOST", "127.0.0.1"),
        port=env.get("POSTGRES_PORT", "5432"),
        user=env.get("POSTGRES_USER", "postgres"),
        password=env.get("POSTGRES_PASSWORD", ""),
        connect_timeout=int(float(env.get("POSTGRES_CONNECT_TIMEOUT", "5"))),
        autocommit=True,
    )
    with connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
