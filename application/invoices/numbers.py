"""Invoice numbers: ``{prefix}-{YYYY}-{seq:06d}``, gapless per issuer and year (SPEC §11).

A number is allocated for one *charge key* (the id of the charge's intent:
the checkout id of an upgrade, a renewal's or a change's intent id), and the
same key always gets the same number back — a retry, or ``reconcile``
finishing what a crash left, records the number the first attempt was given.
The caller allocates only once the charge succeeded (or the total is 0, when
nothing is charged), and then always records the charging event: so every
allocated number ends on an invoice, and the sequence has no gaps.

Two tables beside the events (same database, see :mod:`application.sql_tables`):

- ``invoice_sequences`` — (prefix, year) → the last sequence handed out;
- ``invoice_numbers`` — charge key → its number, sequence and issue time.

One transaction bumps the counter (an upsert: PostgreSQL row-locks it, SQLite
takes its write lock with the first statement, so racing charges queue there),
then looks for the key again and either records the new number or — a racing
attempt of the same charge won — rolls the bump back. Nothing else ever
writes these tables; a rolled-back bump leaves no gap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from application.sql_tables import SqlTables
from domain.clock import ensure_utc
from domain.invoice import format_invoice_number, invoice_year

INVOICE_NUMBER_TABLES = (
    "CREATE TABLE IF NOT EXISTS invoice_sequences ("
    " prefix TEXT NOT NULL,"
    " year INTEGER NOT NULL,"
    " last_sequence BIGINT NOT NULL,"
    " PRIMARY KEY (prefix, year))",
    "CREATE TABLE IF NOT EXISTS invoice_numbers ("
    " charge_key TEXT PRIMARY KEY,"
    " number TEXT NOT NULL UNIQUE,"
    " prefix TEXT NOT NULL,"
    " year INTEGER NOT NULL,"
    " sequence BIGINT NOT NULL,"
    " issued_at TEXT NOT NULL,"
    " UNIQUE (prefix, year, sequence))",
)
_COLUMNS = "charge_key, number, prefix, year, sequence, issued_at"


@dataclass(frozen=True, slots=True)
class AllocatedNumber:
    """A number handed out for one charge, and the issue time it was handed out at."""

    charge_key: str
    number: str
    prefix: str
    year: int
    sequence: int
    #: Kept with the number: a retry on another day still issues the invoice
    #: at the time (and in the year) its number says.
    issued_at: datetime


class _KeyAlreadyNumbered(Exception):
    """Raised inside the transaction to roll back the counter's bump."""


class InvoiceNumbers:
    """The allocator: one number per charge key, gapless per prefix and year."""

    def __init__(self, tables: SqlTables) -> None:
        self._tables = tables
        # SQLite connections of one process share the library's writer; keep
        # this process's allocations one at a time (other processes queue on
        # the database's lock).
        self._lock = threading.Lock()
        tables.create(INVOICE_NUMBER_TABLES)

    def allocate(self, charge_key: str, *, prefix: str, issued_at: datetime) -> AllocatedNumber:
        """The number of ``charge_key``: the one it already has, or the next one.

        ``issued_at`` decides the year of a new number; an existing number
        keeps its own issue time.
        """
        existing = self.number_for(charge_key)
        if existing is not None:
            return existing
        issued_at = ensure_utc(issued_at)
        year = invoice_year(issued_at)
        try:
            with self._lock, self._tables.transaction() as cursor:
                sequence = self._bump(cursor, prefix, year)
                if self._select(cursor, charge_key) is not None:
                    raise _KeyAlreadyNumbered
                allocated = AllocatedNumber(
                    charge_key=charge_key,
                    number=format_invoice_number(prefix, year, sequence),
                    prefix=prefix,
                    year=year,
                    sequence=sequence,
                    issued_at=issued_at,
                )
                self._tables.execute(
                    cursor,
                    f"INSERT INTO invoice_numbers ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
                    (
                        charge_key,
                        allocated.number,
                        prefix,
                        year,
                        sequence,
                        issued_at.isoformat(),
                    ),
                )
        except _KeyAlreadyNumbered:
            # A racing attempt of the same charge numbered it first: its number stands.
            found = self.number_for(charge_key)
            assert found is not None
            return found
        return allocated

    def allocate_many(
        self, charge_keys: list[str], *, prefix: str, issued_at: datetime
    ) -> dict[str, AllocatedNumber]:
        """The numbers of many charges (a sweep's batch) in one transaction.

        Each key keeps the number it already has; the others get the next
        numbers in the order given. The counter row is locked first (an upsert
        that changes nothing), so a racing :meth:`allocate` of one of these
        keys has committed — and is seen — before the keys are looked up.
        """
        found: dict[str, AllocatedNumber] = {}
        wanted = list(dict.fromkeys(charge_keys))
        if not wanted:
            return found
        issued_at = ensure_utc(issued_at)
        year = invoice_year(issued_at)
        with self._lock, self._tables.transaction() as cursor:
            self._tables.execute(
                cursor,
                "INSERT INTO invoice_sequences (prefix, year, last_sequence) VALUES (%s, %s, 0) "
                "ON CONFLICT (prefix, year) DO UPDATE "
                "SET last_sequence = invoice_sequences.last_sequence "
                "RETURNING last_sequence",
                (prefix, year),
            )
            last = int(cursor.fetchone()["last_sequence"])
            for key in wanted:
                existing = self._select(cursor, key)
                if existing is not None:
                    found[key] = existing
                    continue
                last += 1
                allocated = AllocatedNumber(
                    charge_key=key,
                    number=format_invoice_number(prefix, year, last),
                    prefix=prefix,
                    year=year,
                    sequence=last,
                    issued_at=issued_at,
                )
                self._tables.execute(
                    cursor,
                    f"INSERT INTO invoice_numbers ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
                    (key, allocated.number, prefix, year, last, issued_at.isoformat()),
                )
                found[key] = allocated
            self._tables.execute(
                cursor,
                "UPDATE invoice_sequences SET last_sequence = %s WHERE prefix = %s AND year = %s",
                (last, prefix, year),
            )
        return found

    def number_for(self, charge_key: str) -> AllocatedNumber | None:
        with self._tables.read() as cursor:
            return self._select(cursor, charge_key)

    def allocated(self, prefix: str, year: int) -> list[AllocatedNumber]:
        """Every number of ``prefix`` and ``year``, in sequence order (audits, tests)."""
        with self._tables.read() as cursor:
            self._tables.execute(
                cursor,
                f"SELECT {_COLUMNS} FROM invoice_numbers "  # noqa: S608
                "WHERE prefix = %s AND year = %s ORDER BY sequence",
                (prefix, year),
            )
            return [_allocated(row) for row in cursor.fetchall()]

    def _bump(self, cursor: Any, prefix: str, year: int) -> int:
        self._tables.execute(
            cursor,
            "INSERT INTO invoice_sequences (prefix, year, last_sequence) VALUES (%s, %s, 1) "
            "ON CONFLICT (prefix, year) DO UPDATE "
            "SET last_sequence = invoice_sequences.last_sequence + 1 "
            "RETURNING last_sequence",
            (prefix, year),
        )
        row = cursor.fetchone()
        return int(row["last_sequence"])

    def _select(self, cursor: Any, charge_key: str) -> AllocatedNumber | None:
        self._tables.execute(
            cursor,
            f"SELECT {_COLUMNS} FROM invoice_numbers WHERE charge_key = %s",  # noqa: S608
            (charge_key,),
        )
        row = cursor.fetchone()
        return None if row is None else _allocated(row)


def _allocated(row: Any) -> AllocatedNumber:
    get = row.__getitem__
    return AllocatedNumber(
        charge_key=get("charge_key"),
        number=get("number"),
        prefix=get("prefix"),
        year=int(get("year")),
        sequence=int(get("sequence")),
        issued_at=datetime.fromisoformat(get("issued_at")),
    )
