"""The invoices view (SPEC §11) on memory, SQLite and PostgreSQL.

It copies the invoice of *any* event that carries one, applies each event
exactly once however many followers run, pages newest first, keeps tenants
apart, and is rebuilt from the log like the other views.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking

from application.bootstrap import Services, build_services
from application.errors import OrganizationNotFound
from application.invoices.projection import (
    InvoiceRow,
    InvoicesProjection,
    InvoicesView,
    invoice_row,
)
from application.projections.follower import Follower
from application.projections.rebuild import rebuild_invoices
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.errors import InvalidRequest, NotFound
from domain.events import OrganizationEvent, TrialExpired
from tests.application.helpers import CONTACT, SPEC_REQUEST, organization_in_trial
from tests.conftest import T0


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


def buy(services: Services, org: UUID, key: str = "key-1") -> dict[str, Any]:
    total = services.app.quote(org, SPEC_REQUEST).total
    return services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(SPEC_REQUEST, CONTACT, total, "tok_visa"),
        idempotency_key=key,
    )


def bought(services: Services, count: int) -> list[tuple[UUID, str]]:
    found = []
    for index in range(count):
        org = organization_in_trial(services.app)
        found.append((org, buy(services, org, key=f"key-{index}")["invoice_number"]))
    return found


def test_the_view_copies_the_invoice_the_purchase_recorded(services: Services) -> None:
    ((org, number),) = bought(services, 1)
    services.invoices.catch_up()

    row = services.invoices.invoice(org, number)

    events = services.app.organization_events(org, limit=1000)["events"]
    (purchased,) = [e for e in events if e["type"] == "UpgradePurchased"]
    assert row.invoice == purchased["data"]["invoice"]
    assert row.position == purchased["position"]
    assert row.to_dict()["organization_id"] == str(org)


def test_any_event_with_an_invoice_is_copied_and_others_only_move_the_position() -> None:
    """Generic: the view asks ``issued_invoice``, not the event's type."""

    class SomeFutureCharge(OrganizationEvent):
        invoice: dict[str, Any] | None

    invoice = {"number": "SS-2027-000009", "issued_at": "2027-01-05T00:00:00+00:00"}
    org = uuid4()
    common: dict[str, Any] = {
        "originator_id": org,
        "originator_version": 2,
        "timestamp": T0,
        "chain": "0" * 64,
    }
    charge = SomeFutureCharge(**common, invoice=invoice)
    no_invoice = SomeFutureCharge(**common, invoice=None)
    other = TrialExpired(**common, ends_at="2027-01-01T00:00:00+00:00")

    row = invoice_row(charge, 7)
    assert row is not None
    assert (row.number, row.organization_id, row.position) == ("SS-2027-000009", str(org), 7)
    assert invoice_row(no_invoice, 8) is None
    assert invoice_row(other, 9) is None


def test_newest_first_with_a_cursor_and_tenants_apart(services: Services) -> None:
    org = organization_in_trial(services.app)
    buy(services, org)
    # Three more invoices for the same organization, put as later charges' events would.
    view = services.invoices.view
    services.invoices.catch_up()
    first = services.invoices.invoice(org, "SS-2026-000001")
    extra = []
    for sequence in (2, 3, 4):
        # Later charges of this organization (as a renewal would record them).
        number = services.invoice_numbers.allocate(
            f"chk_later_{sequence}", prefix="SS", issued_at=first.issued_at
        ).number
        extra.append(number)
        with view.changes() as changes:
            changes.rows.append(
                InvoiceRow(
                    number=number,
                    organization_id=str(org),
                    issued_at=first.issued_at,
                    position=first.position + sequence * 1000,
                    invoice={**first.invoice, "number": number},
                )
            )
    other_org, other_number = bought(services, 1)[0]
    services.invoices.catch_up()

    page = services.invoices.invoices(org, limit=2)
    assert [i["number"] for i in page["invoices"]] == ["SS-2026-000004", "SS-2026-000003"]
    assert page["next"] == "SS-2026-000003"
    rest = services.invoices.invoices(org, limit=2, after=page["next"])
    assert [i["number"] for i in rest["invoices"]] == ["SS-2026-000002", "SS-2026-000001"]
    assert rest["next"] is None
    assert services.invoices.invoices(org, limit=4)["next"] is None
    # The other organization's invoice is not this one's, and not reachable through it.
    assert other_number == "SS-2026-000005"
    with pytest.raises(NotFound):
        services.invoices.invoice(org, other_number)
    with pytest.raises(InvalidRequest):
        services.invoices.invoices(org, after=other_number)
    assert [i["number"] for i in services.invoices.invoices(other_org)["invoices"]] == [
        other_number
    ]
    with pytest.raises(OrganizationNotFound):
        services.invoices.invoices(uuid4())


def test_two_followers_apply_each_event_once(services: Services) -> None:
    bought(services, 2)
    view = services.invoices.view
    second = Follower(services.app, InvoicesProjection(view=view))
    services.invoices.catch_up()
    second.catch_up()
    # Applying the whole log again is skipped: the position is tracked.
    batch = [
        (services.app.mapper.to_domain_event(n), Tracking(services.app.name, n.id))
        for n in services.app.recorder.select_notifications(start=1, limit=1000)
    ]
    assert view.put_with_tracking(batch) == 0
    assert sorted(view.pages().__next__().rows) == ["SS-2026-000001", "SS-2026-000002"]


def test_a_number_issued_twice_is_refused_as_a_fault_of_the_event(services: Services) -> None:
    bought(services, 1)
    services.invoices.catch_up()
    view: InvoicesView = services.invoices.view
    row = next(iter(view.page(None, 10).rows.values()))
    with pytest.raises(ValueError, match="issued before"), view.changes() as changes:
        changes.rows.append(replace(row, position=row.position + 100))


def test_rebuild_finds_no_difference_then_finds_and_repairs_a_tampered_row(
    services: Services,
) -> None:
    bought(services, 3)
    services.invoices.catch_up()
    view = services.invoices.view

    clean = rebuild_invoices(services.app, view)
    assert clean.consistent
    assert clean.organizations == 3  # invoices compared

    with view.dialect.write_transaction(view) as cursor:
        cursor.execute(f"DELETE FROM {view.invoices} WHERE number = {view.p}", ("SS-2026-000002",))
    report = rebuild_invoices(services.app, view, apply=True)

    assert [d.field for d in report.differences] == ["invoices.SS-2026-000002"]
    assert report.applied
    assert rebuild_invoices(services.app, view).consistent
