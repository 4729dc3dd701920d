"""Shared steps for application tests: the organizations every story starts from."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from application.payments import ChargeResult, SandboxGateway
from application.service import SuiteSubscriptions
from domain.quote import AddOnRequest, UpgradeRequest

CONTACT: dict[str, Any] = {"company_name": "Acme KK", "country": "JP", "email": "bill@acme.example"}
PAYMENT: dict[str, Any] = {
    "gateway": "sandbox",
    "charge_id": "ch_test_1",
    "brand": "visa",
    "last4": "4242",
}
SPEC_REQUEST = UpgradeRequest("yearly", 10, (AddOnRequest("storage-10gb", 2),))


def register(app: SuiteSubscriptions, name: str = "Acme") -> UUID:
    result = app.register_organization(name=name, country="JP", owner_user_id="u-owner")
    return UUID(result.organization_id)


def record_crm(app: SuiteSubscriptions, org: UUID, super_admin: str = "u-alice") -> None:
    """The SPEC §10 plan: 120,000 paid for 365 days, 100 left on 2026-11-26."""
    app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin=super_admin,
        admins=[],
    )


def record_desk(app: SuiteSubscriptions, org: UUID, super_admin: str = "u-bob") -> None:
    app.record_standalone_subscription(
        org,
        service="desk",
        seats=3,
        billing_period="monthly",
        amount_paid=9_000,
        period_start=date(2026, 11, 10),
        period_end=date(2026, 12, 10),
        super_admin=super_admin,
        admins=[],
    )


def organization_in_trial(app: SuiteSubscriptions) -> UUID:
    org = register(app)
    record_crm(app, org)
    app.start_trial(org, by="u-alice")
    return org


def buy_spec_request(app: SuiteSubscriptions, org: UUID, checkout_id: str = "chk_1") -> int:
    """Buy SPEC_REQUEST at its quoted total, paid at once; the total."""
    total = app.quote(org, SPEC_REQUEST).total
    app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=SPEC_REQUEST,
        billing_contact=CONTACT,
        expected_total=total,
        checkout_id=checkout_id,
    )
    app.complete_upgrade_checkout(org, checkout_id=checkout_id, payment=PAYMENT)
    return total


def event_types(app: SuiteSubscriptions, org: UUID) -> list[str]:
    return [e["type"] for e in app.organization_events(org, limit=1000)["events"]]


class CountingGateway(SandboxGateway):
    """The sandbox, counting the charges and voids the saga asks of it."""

    calls: list[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls = []

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        self.calls.append("charge")
        return super().charge(*args, **kwargs)

    def void(self, key: str) -> ChargeResult:
        self.calls.append("void")
        return super().void(key)
