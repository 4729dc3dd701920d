"""The upgrade issues its invoice (SPEC §11), on memory, SQLite and PostgreSQL.

The number is allocated for the checkout id once the charge succeeded (or
cost nothing) and recorded in ``UpgradePurchased``; a retry or reconcile of
the same checkout records the number the first attempt was given, so the
sequence has no gaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.invoices.numbers import AllocatedNumber
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.invoice import Invoice
from domain.quote import UpgradeRequest
from tests.application.helpers import (
    CONTACT,
    SPEC_REQUEST,
    CountingGateway,
    organization_in_trial,
    record_crm,
    record_desk,
    register,
)
from tests.conftest import T0


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, gateway_factory=CountingGateway)
    yield built
    built.close()


def buy(
    services: Services, org: UUID, request: UpgradeRequest = SPEC_REQUEST, key: str = "key-1"
) -> dict[str, Any]:
    total = services.app.quote(org, request).total
    return services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(request, CONTACT, total, "tok_visa"),
        idempotency_key=key,
    )


def recorded_invoice(services: Services, org: UUID) -> dict[str, Any]:
    events = services.app.organization_events(org, limit=1000)["events"]
    (purchased,) = [e for e in events if e["type"] == "UpgradePurchased"]
    invoice: dict[str, Any] = purchased["data"]["invoice"]
    return invoice


def test_the_upgrade_records_its_invoice_and_the_receipt_names_it(services: Services) -> None:
    org = organization_in_trial(services.app)  # CRM: 120,000 paid, 100 of 365 days left

    receipt = buy(services, org)

    invoice = recorded_invoice(services, org)
    assert receipt["invoice_number"] == invoice["number"] == "SS-2026-000001"
    assert invoice["issued_at"] == T0.isoformat()
    assert invoice["kind"] == "upgrade"
    assert invoice["charge_key"] == receipt["checkout_id"]
    assert invoice["issuer"]["name"] == "株式会社スイートサンプル"
    assert invoice["issuer"]["registration_number"] == "T1234567890123"
    assert invoice["billing_contact"] == CONTACT
    assert [
        (line["code"], line["quantity"], line["months"], line["amount"])
        for line in invoice["lines"]
    ] == [
        ("crmplus", 10, 12, 720_000),
        ("storage-10gb", 2, 12, 24_000),
    ]
    assert [(c["source"], c["service"], c["amount"]) for c in invoice["credits"]] == [
        ("standalone_service", "crm", 32_876)
    ]
    # The SPEC §10 figures, once more, on the invoice.
    assert (invoice["subtotal"], invoice["credit"], invoice["tax"], invoice["total"]) == (
        744_000,
        32_876,
        71_112,
        782_236,
    )
    assert invoice["tax_summary"] == [{"rate": 10, "taxable": 711_124, "tax": 71_112}]
    assert invoice["payment"] == {"status": "charged", "brand": "visa", "last4": "4242"}
    assert invoice["total"] == receipt["total"]
    # The stored form reads back as the domain's invoice, unchanged.
    assert Invoice.from_dict(invoice).to_dict() == invoice


def test_one_credit_line_per_credited_standalone_plan(services: Services) -> None:
    org = register(services.app)
    record_crm(services.app, org)
    record_desk(services.app, org, super_admin="u-alice")

    buy(services, org, UpgradeRequest("monthly", 5, ()))

    invoice = recorded_invoice(services, org)
    assert [c["service"] for c in invoice["credits"]] == ["crm", "desk"]
    assert sum(c["amount"] for c in invoice["credits"]) == invoice["credit"]


def test_a_total_of_0_issues_an_invoice_with_no_charge(services: Services) -> None:
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=T0.date() - timedelta(days=265),
        period_end=T0.date() + timedelta(days=100),
        super_admin="u-alice",
        admins=[],
    )

    receipt = buy(services, org, UpgradeRequest("monthly", 5, ()))

    gateway = services.gateway
    assert isinstance(gateway, CountingGateway)
    assert gateway.calls == []
    invoice = recorded_invoice(services, org)
    assert receipt["invoice_number"] == invoice["number"] == "SS-2026-000001"
    assert invoice["total"] == 0
    assert invoice["payment"] == {"status": "no_charge"}
    # Only the credit this invoice applied is on it; the rest opens the balance.
    assert invoice["credit"] == invoice["subtotal"] == 37_500
    assert receipt["unapplied_credit"] > 0


def test_purchases_of_different_organizations_are_numbered_1_2_3(services: Services) -> None:
    numbers = []
    for index in range(3):
        org = organization_in_trial(services.app)
        numbers.append(buy(services, org, key=f"key-{index}")["invoice_number"])
    assert numbers == ["SS-2026-000001", "SS-2026-000002", "SS-2026-000003"]
    stored = services.invoice_numbers.allocated("SS", 2026)
    assert [a.number for a in stored] == numbers


def test_a_retry_answers_the_same_invoice_number(services: Services) -> None:
    org = organization_in_trial(services.app)
    total = services.app.quote(org, SPEC_REQUEST).total
    first = buy(services, org)
    again = services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(SPEC_REQUEST, CONTACT, total, "tok_visa"),
        idempotency_key="key-1",
    )
    assert again["invoice_number"] == first["invoice_number"] == "SS-2026-000001"
    assert len(services.invoice_numbers.allocated("SS", 2026)) == 1


def test_a_crash_after_numbering_is_finished_by_reconcile_with_the_same_number(
    services: Services, clock: ManualClock
) -> None:
    """The process dies after the number was allocated but before the save."""
    org = organization_in_trial(services.app)
    numbers = services.app.invoice_numbers
    allocate = numbers.allocate
    crashed: list[AllocatedNumber] = []

    def allocate_then_die(*args: Any, **kwargs: Any) -> AllocatedNumber:
        allocated = allocate(*args, **kwargs)
        if not crashed:
            crashed.append(allocated)
            raise RuntimeError("the process died here")
        return allocated

    numbers.allocate = allocate_then_die  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="died"):
        buy(services, org)
    assert services.app.facts(org).bundle_state == "trial"  # nothing recorded

    clock.advance(timedelta(days=2))  # reconcile runs two days later
    report = services.checkouts.reconcile()

    assert len(report.completed) == 1
    invoice = recorded_invoice(services, org)
    assert invoice["number"] == crashed[0].number == "SS-2026-000001"
    assert invoice["issued_at"] == T0.isoformat()  # the number's own issue time
    assert len(services.invoice_numbers.allocated("SS", 2026)) == 1
    # A second organization gets the next number: no gap was left.
    other = organization_in_trial(services.app)
    assert buy(services, other, key="key-2")["invoice_number"] == "SS-2026-000002"
