"""The purchase saga (SPEC §5, §11) with a gateway that counts what it is asked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.payments import NO_CHARGE
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.quote import UpgradeRequest
from tests.application.helpers import CONTACT, CountingGateway, register

#: Credits beyond the subtotal: CRM paid 1,000,000 with 100 of 365 days left.
MONTHLY_FIVE_SEATS = UpgradeRequest("monthly", 5, ())


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, gateway_factory=CountingGateway)
    yield built
    built.close()


def gateway_calls(services: Services) -> list[str]:
    gateway = services.gateway
    assert isinstance(gateway, CountingGateway)
    return gateway.calls


def credit_covers_everything(services: Services) -> UUID:
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-alice",
        admins=[],
    )
    assert services.app.quote(org, MONTHLY_FIVE_SEATS).total == 0
    return org


def purchased_event(services: Services, org: UUID) -> dict[str, Any]:
    events = services.app.organization_events(org, limit=1000)["events"]
    (purchased,) = [e for e in events if e["type"] == "UpgradePurchased"]
    data: dict[str, Any] = purchased["data"]
    return data


def test_a_total_of_0_is_bought_without_calling_the_gateway(services: Services) -> None:
    org = credit_covers_everything(services)

    receipt = services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(MONTHLY_FIVE_SEATS, CONTACT, 0, "tok_visa"),
        idempotency_key="key-1",
    )

    assert gateway_calls(services) == []
    assert receipt["total"] == 0
    assert receipt["payment"] == NO_CHARGE
    assert purchased_event(services, org)["payment"] == NO_CHARGE
    facts = services.app.facts(org)
    assert facts.bundle_state == "active"
    assert facts.contract is not None
    assert facts.contract.charge_id is None


def test_a_charged_total_still_goes_through_the_gateway(services: Services) -> None:
    org = credit_covers_everything(services)
    request = UpgradeRequest("yearly", 10, ())
    total = services.app.quote(org, request).total
    assert total > 0

    receipt = services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(request, CONTACT, total, "tok_visa"),
        idempotency_key="key-1",
    )

    assert gateway_calls(services) == ["charge"]
    assert receipt["payment"]["gateway"] == "sandbox"
    assert receipt["payment"]["last4"] == "4242"


def test_reconcile_finishes_a_0_total_checkout_without_calling_the_gateway(
    services: Services, clock: ManualClock
) -> None:
    org = credit_covers_everything(services)
    _, checkout_id, _ = services.app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=MONTHLY_FIVE_SEATS,
        billing_contact=CONTACT,
        expected_total=0,
        idempotency_key="key-1",
    )
    clock.advance(timedelta(minutes=11))

    report = services.checkouts.reconcile()

    assert report.completed == [checkout_id]
    assert gateway_calls(services) == []
    assert purchased_event(services, org)["payment"] == NO_CHARGE
    assert services.app.facts(org).bundle_state == "active"
