"""Builders for domain tests: an organization walked through its story with
fixed ids and explicit business times, so every test reads as the story it tells."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from application.catalog_loader import default_catalog
from domain.catalog import Catalog
from domain.organization import Organization
from domain.quote import AddOnRequest, UpgradeRequest

ORG_ID = UUID("7d0c5a1e-0000-4000-8000-000000000001")
ORG = str(ORG_ID)
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CATALOG: Catalog = default_catalog()
OWNER = "u-owner"
CONTACT: dict[str, Any] = {"company_name": "Acme KK", "country": "JP", "email": "bill@acme.example"}
PAYMENT: dict[str, Any] = {
    "gateway": "sandbox",
    "charge_id": "ch_0001",
    "brand": "visa",
    "last4": "4242",
}


def days(n: float) -> timedelta:
    return timedelta(days=n)


def register(*, owner: str = OWNER, at: datetime = T0) -> Organization:
    return Organization.register(
        organization_id=ORG_ID, name="Acme", country="JP", owner_user_id=owner, at=at
    )


@dataclass(frozen=True)
class Plan:
    """A paid standalone plan as recorded by the back office."""

    service: str
    super_admin: str
    admins: tuple[str, ...] = ()
    seats: int = 5
    billing_period: str = "yearly"
    amount_paid: int = 120_000
    start: date = date(2026, 3, 6)
    end: date = date(2027, 3, 6)


def record(org: Organization, plan: Plan, *, at: datetime = T0) -> Organization:
    org.record_standalone_subscription(
        service=plan.service,
        seats=plan.seats,
        billing_period=plan.billing_period,
        amount_paid=plan.amount_paid,
        period_start=plan.start,
        period_end=plan.end,
        super_admin=plan.super_admin,
        admins=list(plan.admins),
        by=None,
        at=at,
        catalog=CATALOG,
    )
    return org


def organization_with(*plans: Plan, owner: str = OWNER, at: datetime = T0) -> Organization:
    org = register(owner=owner, at=at)
    for plan in plans:
        record(org, plan, at=at)
    return org


def yearly_request(seats: int = 10, **add_ons: int) -> UpgradeRequest:
    return UpgradeRequest(
        "yearly",
        seats,
        tuple(AddOnRequest(code.replace("_", "-"), qty) for code, qty in add_ons.items()),
    )


def monthly_request(seats: int = 10, **add_ons: int) -> UpgradeRequest:
    return UpgradeRequest(
        "monthly",
        seats,
        tuple(AddOnRequest(code.replace("_", "-"), qty) for code, qty in add_ons.items()),
    )


def begin_checkout(
    org: Organization,
    *,
    by: str,
    at: datetime,
    checkout_id: str = "chk_0001",
    request: UpgradeRequest | None = None,
) -> None:
    request = request or yearly_request()
    quote = org.quote(request, at=at, catalog=CATALOG)
    org.begin_checkout(
        checkout_id=checkout_id,
        by=by,
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key="idem-0001",
        at=at,
        catalog=CATALOG,
    )


def upgrade(org: Organization, *, by: str, at: datetime, checkout_id: str = "chk_0001") -> None:
    begin_checkout(org, by=by, at=at, checkout_id=checkout_id)
    org.complete_checkout(
        checkout_id=checkout_id,
        payment=PAYMENT,
        at=at,
        invoice_number=f"SS-{at.year}-000001",
        invoice_issued_at=at,
        catalog=CATALOG,
    )
