"""The invoices view (SPEC §11): every issued invoice, copied from the event that issued it.

An invoice is decided once, when its charge is recorded (``Invoice.to_dict()``
in the charging event); this view only copies it, from **any** event whose
``invoice`` is not null (:attr:`domain.events.OrganizationEvent.issued_invoice`:
the upgrade's ``UpgradePurchased``, a renewal, a mid-term change), so a new
charging event needs no change here.

The project's one projection shape (docs/architecture.md): :class:`InvoicesView`
is a tracked view (application/projections/tracking.py) with its tables and
:meth:`InvoicesView.put_with_tracking` (rows and the batch's position in one
transaction, under the view's lock, skipping what another follower applied),
:class:`InvoicesProjection` its projection, run by the one
:class:`~application.projections.follower.Follower`, and :class:`InvoicesReadModel`
is its one reader. Tables (``prefix`` is
``invoice_view`` live; a rebuild builds a fresh set beside):
``{prefix}_invoices`` (number, organization_id, issued_at, position, invoice)
and ``{prefix}_tracking``.

Lists are newest first in log order (the order the invoices were recorded:
``position`` descending); ``next`` is the last number of a page, passed back
as ``after``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

from eventsourcing.application import Application

from application.errors import OrganizationNotFound
from application.event_stream import select_organization_notifications
from application.projections.read_model import FollowedView
from application.projections.tracking import Changes, TrackedView, ViewProjection
from application.schema import schema_lock
from application.settings import ViewSettings
from application.sql_dialect import Dialect, view_store
from application.view_faults import ViewFaults
from domain.errors import InvalidRequest, NotFound
from domain.events import OrganizationEvent
from domain.invoice import is_invoice_number

LIVE_PREFIX = "invoice_view"
MAX_INVOICE_PAGE = 100
_COLUMNS = "number, organization_id, issued_at, position, invoice"


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One issued invoice as the view holds it."""

    number: str
    organization_id: str
    issued_at: datetime
    #: The log position of the event that issued it.
    position: int
    #: ``Invoice.to_dict()``, exactly as recorded in the event.
    invoice: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """A line of the list: what a customer scans for."""
        invoice = self.invoice
        return {
            "number": self.number,
            "issued_at": invoice["issued_at"],
            "kind": invoice["kind"],
            "currency": invoice["currency"],
            "subtotal": invoice["subtotal"],
            "credit": invoice["credit"],
            "tax": invoice["tax"],
            "total": invoice["total"],
            "payment": invoice["payment"],
            "position": self.position,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole invoice, with where it came from."""
        return {**self.invoice, "organization_id": self.organization_id, "position": self.position}


def invoice_row(event: OrganizationEvent, position: int) -> InvoiceRow | None:
    """The row an event puts in the view (``None``: it issued no invoice)."""
    invoice = event.issued_invoice
    if invoice is None:
        return None
    return InvoiceRow(
        number=str(invoice["number"]),
        organization_id=str(event.originator_id),
        issued_at=datetime.fromisoformat(invoice["issued_at"]),
        position=position,
        invoice=invoice,
    )


@dataclass
class InvoicePage:
    """The rows whose numbers lie in ``(after, last]``, read in one short read."""

    position: int
    last: str | None
    rows: dict[str, InvoiceRow] = field(default_factory=dict)

    def up_to(self, last: str | None) -> InvoicePage:
        """This page cut back to the numbers up to ``last`` (``None``: keep everything)."""
        if last is None:
            return self
        return InvoicePage(
            self.position, last, {key: row for key, row in self.rows.items() if key <= last}
        )

    def compared(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """Each invoice's fields by ``(number, "invoices.<number>")``, as a rebuild compares."""
        return {
            (number, f"invoices.{number}"): (
                row.organization_id,
                {
                    "organization_id": row.organization_id,
                    "issued_at": row.issued_at.astimezone(UTC).isoformat(),
                    "position": row.position,
                    **{f"invoice.{key}": value for key, value in row.invoice.items()},
                },
            )
            for number, row in self.rows.items()
        }


class InvoiceChanges(Changes):
    """The changes of one write transaction: new rows, a tracked position."""

    view: InvoicesView

    def __init__(self, view: InvoicesView, cursor: Any) -> None:
        super().__init__(view, cursor)
        self.rows: list[InvoiceRow] = []

    def take(self, events: list[tuple[OrganizationEvent, int]]) -> None:
        """Copy the invoices of ``events``."""
        for domain_event, position in events:
            row = invoice_row(domain_event, position)
            if row is not None:
                self.rows.append(row)

    def write(self) -> list[str]:
        if self.rows:
            self.view.insert_rows(self)
        return [row.organization_id for row in self.rows]


class InvoicesView(TrackedView[InvoiceChanges]):
    """Every issued invoice, by number, with its tracking."""

    copied = {"invoices": _COLUMNS}

    def __init__(
        self,
        datastore: Any,
        dialect: Dialect,
        prefix: str = LIVE_PREFIX,
        *,
        owns_store: bool = False,
    ) -> None:
        super().__init__(datastore, dialect, prefix, owns_store=owns_store)
        self.invoices = self.table("invoices")
        self.invoice_text = dialect.json_text("invoice")

    def with_prefix(self, prefix: str) -> Self:
        return type(self)(self.datastore, self.dialect, prefix)

    def new_changes(self, cursor: Any) -> InvoiceChanges:
        return InvoiceChanges(self, cursor)

    def statements(self, cursor: Any) -> list[str]:
        uid, integer, text, moment, document = self.dialect.types
        return [
            f"CREATE TABLE IF NOT EXISTS {self.invoices} (number {text} PRIMARY KEY, "
            f"organization_id {uid} NOT NULL, issued_at {moment} NOT NULL, "
            f"position {integer} NOT NULL, invoice {document} NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{self.prefix}_invoices_org_idx" '
            f"ON {self.invoices} (organization_id, position)",
        ]

    def insert_rows(self, changes: InvoiceChanges) -> None:
        self._refuse_reused_numbers(changes)
        p = self.p
        changes.cursor.executemany(
            f"INSERT INTO {self.invoices} ({_COLUMNS}) VALUES ({p}, {p}, {p}, {p}, {p})",  # noqa: S608
            [
                (
                    row.number,
                    self.dialect.db_id(row.organization_id),
                    self.dialect.db_time(row.issued_at),
                    row.position,
                    json.dumps(row.invoice, ensure_ascii=False, separators=(",", ":")),
                )
                for row in changes.rows
            ],
        )

    def _refuse_reused_numbers(self, changes: InvoiceChanges) -> None:
        """A number is issued once (SPEC §11): a second event with it is a fault of that event."""
        numbers = [row.number for row in changes.rows]
        if len(set(numbers)) != len(numbers):
            msg = f"an invoice number is issued twice in one batch: {numbers}"
            raise ValueError(msg)
        marks = ", ".join([self.p] * len(numbers))
        changes.cursor.execute(
            f"SELECT number FROM {self.invoices} WHERE number IN ({marks})",  # noqa: S608
            numbers,
        )
        taken = [found["number"] for found in changes.cursor.fetchall()]
        if taken:
            msg = f"invoice number(s) {taken} were issued before"
            raise ValueError(msg)

    # -- reading ----------------------------------------------------------------

    def _row(self, found: Any) -> InvoiceRow:
        issued_at = self.dialect.py_time(found["issued_at"])
        assert issued_at is not None
        return InvoiceRow(
            number=found["number"],
            organization_id=str(found["organization_id"]),
            issued_at=issued_at,
            position=int(found["position"]),
            invoice=json.loads(found["invoice"]),
        )

    def _select(self, where: str, params: tuple[Any, ...], tail: str = "") -> list[InvoiceRow]:
        columns = f"number, organization_id, issued_at, position, {self.invoice_text}"
        with self.dialect.read_transaction(self) as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {self.invoices} WHERE {where} {tail}",  # noqa: S608
                params,
            )
            found = cursor.fetchall()
        return [self._row(row) for row in found]

    def for_organization(
        self, organization_id: str, *, before_position: int | None, limit: int
    ) -> list[InvoiceRow]:
        """The organization's invoices, newest first (log order), before a position."""
        p = self.p
        where = f"organization_id = {p}"
        params: tuple[Any, ...] = (self.dialect.db_id(organization_id),)
        if before_position is not None:
            where += f" AND position < {p}"
            params += (before_position,)
        return self._select(where, (*params, limit), f"ORDER BY position DESC LIMIT {p}")

    def get(self, organization_id: str, number: str) -> InvoiceRow | None:
        """One invoice of one organization (another organization's is not found)."""
        p = self.p
        found = self._select(
            f"number = {p} AND organization_id = {p}",
            (number, self.dialect.db_id(organization_id)),
        )
        return found[0] if found else None

    def page(self, after: str | None, limit: int) -> InvoicePage:
        """Up to ``limit`` rows after the number ``after`` and the view's position, read
        together (a rebuild compares the live and the rebuilt view page by page)."""
        p = self.p
        where = "" if after is None else f"WHERE number > {p} "
        params = (limit,) if after is None else (after, limit)
        columns = f"number, organization_id, issued_at, position, {self.invoice_text}"
        with self.dialect.read_transaction(self) as cursor:
            position = self.tracked_position(cursor)
            cursor.execute(
                f"SELECT {columns} FROM {self.invoices} {where}ORDER BY number LIMIT {p}",  # noqa: S608
                params,
            )
            found = cursor.fetchall()
        rows = [self._row(row) for row in found]
        last = rows[-1].number if len(rows) >= limit else None
        return InvoicePage(position, last, {row.number: row for row in rows})


class InvoicesProjection(ViewProjection[InvoicesView]):
    """Copies the invoice of every event that issued one into the invoices view."""

    name = "invoices"


def construct_invoices_view(app: Application[Any], prefix: str = LIVE_PREFIX) -> InvoicesView:
    """The invoices view on the application's own store, tables created if missing.

    The ``memory://`` store's view is an in-memory SQLite database, like the
    organization views'.
    """
    store = view_store(app, "invoices")
    view = InvoicesView(store.datastore, store.dialect, prefix, owns_store=store.owned)
    with schema_lock(app.env):
        view.create_table()
    return view


class InvoicesReadModel(FollowedView):
    """The invoices view, its follower and its one reader, wired once."""

    def __init__(
        self,
        app: Application[Any],
        view: InvoicesView,
        *,
        settings: ViewSettings,
        faults: ViewFaults | None = None,
    ) -> None:
        super().__init__(app, InvoicesProjection(view=view), settings=settings, faults=faults)
        self.view = view

    def invoices(
        self,
        organization_id: UUID,
        *,
        after: str | None = None,
        limit: int = 20,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        """A page of the organization's invoices, newest first; ``next`` is the cursor."""
        if not 1 <= limit <= MAX_INVOICE_PAGE:
            raise InvalidRequest(
                "limit is out of range.",
                details={"limit": [f"must be between 1 and {MAX_INVOICE_PAGE}"]},
            )
        self._require_organization(organization_id)
        self.wait_for(min_position)
        before: int | None = None
        if after is not None:
            cursor = (
                self.view.get(str(organization_id), after) if is_invoice_number(after) else None
            )
            if cursor is None:
                raise InvalidRequest(
                    "after is not one of this organization's invoices.",
                    code="unknown_invoice_cursor",
                    details={"after": ["must be the number of the last invoice of a page"]},
                )
            before = cursor.position
        rows = self.view.for_organization(
            str(organization_id), before_position=before, limit=limit + 1
        )
        page = rows[:limit]
        return {
            "organization_id": str(organization_id),
            "invoices": [row.summary() for row in page],
            "next": page[-1].number if len(rows) > limit else None,
        }

    def invoice(
        self, organization_id: UUID, number: str, *, min_position: int | None = None
    ) -> InvoiceRow:
        """One invoice of the organization; ``invoice_not_found`` (404) otherwise."""
        self._require_organization(organization_id)
        self.wait_for(min_position)
        row = self.view.get(str(organization_id), number) if is_invoice_number(number) else None
        if row is None:
            raise NotFound(
                f"No invoice {number!r} for this organization.",
                code="invoice_not_found",
                details={"number": number},
            )
        return row

    def _require_organization(self, organization_id: UUID) -> None:
        if not select_organization_notifications(self.app.recorder, organization_id, 0, 1):
            raise OrganizationNotFound(organization_id)
