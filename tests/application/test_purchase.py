"""The purchase saga (SPEC §5, §11) with a gateway that counts what it is asked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.idempotency import IdempotencyKeyReused
from application.payments import NO_CHARGE, ChargeResult, PaymentDeclined, SandboxGateway
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


# -- a key answers its checkout's outcome, as the log tells it ---------------------


def buy(services: Services, org: UUID, *, token: str = "tok_visa", key: str = "key-1") -> Any:
    request = UpgradeRequest("yearly", 10, ())
    total = services.app.quote(org, request).total
    return services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(request, CONTACT, total, token),
        idempotency_key=key,
    )


def test_a_retry_with_the_key_answers_the_original_receipt_from_the_log(
    services: Services,
) -> None:
    org = credit_covers_everything(services)
    first = buy(services, org)
    request = UpgradeRequest("yearly", 10, ())

    again = services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(request, CONTACT, first["total"], "tok_visa"),
        idempotency_key="key-1",
    )

    assert again == first
    assert gateway_calls(services) == ["charge"]


def test_a_retry_after_a_declined_card_answers_the_same_refusal_without_a_charge(
    services: Services,
) -> None:
    org = credit_covers_everything(services)
    with pytest.raises(PaymentDeclined) as first:
        buy(services, org, token="tok_chargeDeclined")

    with pytest.raises(PaymentDeclined) as again:
        buy(services, org, token="tok_chargeDeclined")

    assert first.value.code == again.value.code == "card_declined"
    assert (again.value.message, again.value.details) == (first.value.message, first.value.details)
    assert gateway_calls(services) == ["charge"]


def test_a_retry_of_a_checkout_reconcile_abandoned_answers_checkout_abandoned(
    services: Services, clock: ManualClock
) -> None:
    org = credit_covers_everything(services)
    request = UpgradeRequest("yearly", 10, ())
    total = services.app.quote(org, request).total
    _, checkout_id, _ = services.app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="key-1",
    )  # ...and the request died before charging
    clock.advance(timedelta(minutes=11))
    assert services.checkouts.reconcile().failed == [checkout_id]

    with pytest.raises(PaymentDeclined) as retried:
        services.checkouts.purchase(
            org,
            by="u-alice",
            purchase=PurchaseRequest(request, CONTACT, total, "tok_visa"),
            idempotency_key="key-1",
        )

    assert retried.value.code == "checkout_abandoned"
    assert retried.value.details == {"key": checkout_id}
    assert gateway_calls(services) == ["void"]
    assert services.app.facts(org).bundle_state == "none"


def test_the_key_of_one_purchase_is_refused_for_another(services: Services) -> None:
    org = credit_covers_everything(services)
    first = buy(services, org)

    with pytest.raises(IdempotencyKeyReused):
        services.checkouts.purchase(
            org,
            by="u-alice",
            purchase=PurchaseRequest(UpgradeRequest("yearly", 10, ()), CONTACT, 1, "tok_visa"),
            idempotency_key="key-1",
        )
    assert first["payment"]["gateway"] == "sandbox"


class ReconcileDuringCharge(SandboxGateway):
    """Charges, then reconcile records the purchase before the request can."""

    during_charge: Callable[[], object] = staticmethod(lambda: None)

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        charged = super().charge(*args, **kwargs)
        self.during_charge()
        return charged


def test_a_purchase_reconcile_recorded_first_answers_the_recorded_receipt(
    store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    services = build_services(
        store_url, clock=clock, catalog=catalog, gateway_factory=ReconcileDuringCharge
    )
    org = credit_covers_everything(services)
    gateway = services.gateway
    assert isinstance(gateway, ReconcileDuringCharge)

    def slow_request_meets_reconcile() -> None:
        clock.advance(timedelta(minutes=11))
        assert len(services.checkouts.reconcile().completed) == 1

    gateway.during_charge = slow_request_meets_reconcile

    answered = buy(services, org)

    events = services.app.organization_events(org, limit=1000)["events"]
    assert [e["type"] for e in events].count("UpgradePurchased") == 1
    assert (answered["version"], answered["position"]) == (
        events[-1]["version"],
        events[-1]["position"],
    )
    assert (
        answered["payment"]["charge_id"] == purchased_event(services, org)["payment"]["charge_id"]
    )
    services.close()
