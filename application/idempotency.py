"""Idempotency keys (SPEC §6), kept in the event store's database.

A client that sends ``Idempotency-Key: K`` may send the same request again
(after a timeout, a dropped connection, a crash) and get the first answer
back without the work being done twice.

- The first request with K *claims* it (a row ``in_progress``), does the
  work, then *finishes* it with the answer (status and body).
- The same K with the same request (same fingerprint: method, path,
  canonical body, acting user) replays the stored answer.
- The same K with a different request is ``422 idempotency_key_reused``.
- The same K arriving while the first is still working is
  ``409 idempotency_key_in_use``.
- An answer that says "try again" (a state conflict, a gateway or server
  error) *releases* K instead of storing it, so a retry of the SAME request
  does the work again. The key stays bound to its request: a different
  request with a released key is still ``422 idempotency_key_reused``.
  Which answers are stored is the interface's policy (see docs/api.md).

Keys are scoped: a key of one organization never collides with another's.
A claim abandoned by a crashed process expires after a lease.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from application.sql_tables import SqlTables
from domain.card_numbers import refuse_card_numbers
from domain.clock import Clock
from domain.errors import InvalidRequest, StateConflict

IN_PROGRESS = "in_progress"
DONE = "done"
#: The request's answer said "try again": the same request may redo the work.
RELEASED = "released"
MAX_KEY_LENGTH = 255
DEFAULT_LEASE = timedelta(minutes=5)

IDEMPOTENCY_TABLE = (
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    " scope TEXT NOT NULL,"
    " idempotency_key TEXT NOT NULL,"
    " organization_id TEXT,"
    " fingerprint TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " claim_token TEXT NOT NULL,"
    " response_status INTEGER,"
    " response_body TEXT,"
    " created_at TEXT NOT NULL,"
    " PRIMARY KEY (scope, idempotency_key))"
)


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class IdempotencyKeyInUse(StateConflict):
    code = "idempotency_key_in_use"


def request_fingerprint(method: str, path: str, body: Any, user: str) -> str:
    """sha256 of the request as the key protects it (key order and spacing ignored)."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body, "user": user},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a key: either ours to work under, or a replay."""

    scope: str
    key: str
    token: str | None
    replay: StoredAnswer | None

    @property
    def is_replay(self) -> bool:
        return self.replay is not None


class IdempotencyStore:
    def __init__(self, tables: SqlTables, clock: Clock, lease: timedelta = DEFAULT_LEASE) -> None:
        self._tables = tables
        self._clock = clock
        self._lease = lease
        tables.create([IDEMPOTENCY_TABLE])

    def claim(
        self, *, scope: str, key: str, fingerprint: str, organization_id: str | None
    ) -> Claim:
        """Claim ``key`` for a request, or answer with the stored answer.

        A key holding a card number is refused before it is written.
        """
        refuse_card_numbers({"idempotency_key": key})
        token = uuid.uuid4().hex
        now = self._clock.now()
        with self._tables.transaction() as cursor:
            # Insert first: the write takes the lock, so the read below sees
            # every committed claim of this key.
            self._tables.execute(
                cursor,
                "INSERT INTO idempotency_keys (scope, idempotency_key, organization_id,"
                " fingerprint, status, claim_token, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (scope, idempotency_key) DO NOTHING",
                (scope, key, organization_id, fingerprint, IN_PROGRESS, token, now.isoformat()),
            )
            self._tables.execute(
                cursor,
                "SELECT fingerprint, status, claim_token, response_status, response_body,"
                " created_at FROM idempotency_keys WHERE scope = %s AND idempotency_key = %s",
                (scope, key),
            )
            row = cursor.fetchone()
            if row["claim_token"] == token:
                return Claim(scope, key, token, None)
            if row["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used for a different request; "
                    "use a new key for a new request.",
                    details={"idempotency_key": key},
                )
            if row["status"] == DONE:
                answer = StoredAnswer(int(row["response_status"]), row["response_body"])
                return Claim(scope, key, None, answer)
            if row["status"] == RELEASED:
                self._take_over(cursor, scope, key, token, now)
                return Claim(scope, key, token, None)
            if now - datetime.fromisoformat(row["created_at"]) < self._lease:
                raise IdempotencyKeyInUse(
                    "A request with this Idempotency-Key is still being processed; "
                    "retry in a moment to get its answer.",
                    details={"idempotency_key": key},
                )
            # The first claimant died mid-request: take the key over.
            self._take_over(cursor, scope, key, token, now)
        return Claim(scope, key, token, None)

    def _take_over(self, cursor: Any, scope: str, key: str, token: str, now: datetime) -> None:
        self._tables.execute(
            cursor,
            "UPDATE idempotency_keys SET status = %s, claim_token = %s, created_at = %s"
            " WHERE scope = %s AND idempotency_key = %s",
            (IN_PROGRESS, token, now.isoformat(), scope, key),
        )

    def finish(self, claim: Claim, status: int, body: str) -> None:
        """Store the answer so that repeats of the request replay it."""
        with self._tables.transaction() as cursor:
            self._tables.execute(
                cursor,
                "UPDATE idempotency_keys SET status = %s, response_status = %s,"
                " response_body = %s WHERE scope = %s AND idempotency_key = %s"
                " AND claim_token = %s",
                (DONE, status, body, claim.scope, claim.key, claim.token),
            )

    def release(self, claim: Claim) -> None:
        """Let the same request be sent again with this key (and only that request).

        The row and its fingerprint stay, so the key cannot be reused for a
        different request (SPEC §6): after a ``quote_changed`` or a gateway
        error, a new total or another card needs a new key.
        """
        with self._tables.transaction() as cursor:
            self._tables.execute(
                cursor,
                "UPDATE idempotency_keys SET status = %s WHERE scope = %s"
                " AND idempotency_key = %s AND claim_token = %s",
                (RELEASED, claim.scope, claim.key, claim.token),
            )
