"""The article's organization: CRM (super admin u-alice) and Desk (super admin u-bob)
bought standalone, so u-alice is refused the trial until Desk's super admin is unified."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from uuid import UUID

from application.bootstrap import Services
from application.service import SuiteSubscriptions
from application.upgrade import PurchaseRequest
from domain.quote import AddOnRequest, UpgradeRequest

CRM_SUPER_ADMIN = "u-alice"
DESK_SUPER_ADMIN = "u-bob"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def register_the_article_organization(app: SuiteSubscriptions, *, country: str = "JP") -> UUID:
    organization_id = UUID(
        app.register_organization(
            name="Acme KK", country=country, owner_user_id="u-owner"
        ).organization_id
    )
    app.record_standalone_subscription(
        organization_id,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 1, 1),
        period_end=date(2027, 1, 1),
        super_admin=CRM_SUPER_ADMIN,
        admins=[],
    )
    app.record_standalone_subscription(
        organization_id,
        service="desk",
        seats=3,
        billing_period="yearly",
        amount_paid=36_000,
        period_start=date(2026, 4, 1),
        period_end=date(2027, 4, 1),
        super_admin=DESK_SUPER_ADMIN,
        admins=[],
    )
    return organization_id


def unify_the_super_admin(app: SuiteSubscriptions, organization_id: UUID) -> None:
    """What the refusal page tells them to do: one super admin for every purchased service."""
    app.change_service_admins(
        organization_id,
        service="desk",
        super_admin=CRM_SUPER_ADMIN,
        admins=[],
        by="ops-1",
        by_operator=True,
    )


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def buy_the_bundle(
    services: Services, organization_id: UUID, *, token: str = "tok_visa"
) -> dict[str, Any]:
    """The story up to the receipt: unify, trial, and buy 10 yearly seats with 2 storage
    add-ons through the same purchase the API and the payment page run."""
    unify_the_super_admin(services.app, organization_id)
    services.app.start_trial(organization_id, by=CRM_SUPER_ADMIN)
    request = UpgradeRequest(
        billing_period="yearly", seats=10, add_ons=(AddOnRequest("storage-10gb", 2),)
    )
    quote = services.app.quote(organization_id, request)
    receipt: dict[str, Any] = services.checkouts.purchase(
        organization_id,
        by=CRM_SUPER_ADMIN,
        purchase=PurchaseRequest(
            request=request,
            billing_contact={
                "company_name": "Acme KK",
                "country": "JP",
                "email": "billing@acme.example",
            },
            expected_total=quote.total,
            payment_token=token,
        ),
        idempotency_key="story-purchase",
    )
    return receipt
