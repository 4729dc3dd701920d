"""Several plan periods per standalone service, on every store (SPEC §11).

A renewal recorded before the upgrade adds a period; the purchase credits
each running period, records one ``StandaloneContractTerminated`` per service
with its share, and the views, the snapshots and a rebuild agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.projections.rebuild import rebuild_views
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.facts import facts_from_dict, facts_to_dict
from domain.quote import UpgradeRequest
from tests.application.helpers import CONTACT, CountingGateway, register

YEARLY = UpgradeRequest("yearly", 10, ())
MONTHLY_FIVE_SEATS = UpgradeRequest("monthly", 5, ())


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, gateway_factory=CountingGateway)
    yield built
    built.close()


def crm_with_its_renewal(services: Services) -> UUID:
    """CRM 2026-03-06..2027-03-06 for 120,000, then 2027-03-06..2028-03-06 for 130,000."""
    org = register(services.app)
    for start, end, paid in (
        (date(2026, 3, 6), date(2027, 3, 6), 120_000),
        (date(2027, 3, 6), date(2028, 3, 6), 130_000),
    ):
        services.app.record_standalone_subscription(
            org,
            service="crm",
            seats=5,
            billing_period="yearly",
            amount_paid=paid,
            period_start=start,
            period_end=end,
            super_admin="u-alice",
            admins=[],
        )
    return org


def buy(services: Services, org: UUID, request: UpgradeRequest) -> dict[str, object]:
    total = services.app.quote(org, request).total
    return services.checkouts.purchase(
        org,
        by="u-alice",
        purchase=PurchaseRequest(request, CONTACT, total, "tok_visa"),
        idempotency_key="key-periods",
    )


def test_a_renewal_keeps_the_running_period_and_both_are_credited(services: Services) -> None:
    org = crm_with_its_renewal(services)
    facts = services.app.facts(org)
    assert [p.amount_paid for p in facts.periods("crm")] == [120_000, 130_000]

    quote = services.app.quote(org, YEARLY)  # 2026-11-26: 100 of 365 days, then all 366
    assert [(c.period_start, c.amount) for c in quote.credits] == [
        (date(2026, 3, 6), 32_876),
        (date(2027, 3, 6), 130_000),
    ]
    receipt = buy(services, org, YEARLY)
    assert receipt["credit"] == 162_876

    events = services.app.organization_events(org, limit=1000)["events"]
    (terminated,) = [e for e in events if e["type"] == "StandaloneContractTerminated"]
    assert terminated["data"]["service"] == "crm"
    assert terminated["data"]["amount_credited"] == 162_876
    assert terminated["data"]["credit_applied"] == 162_876
    assert terminated["data"]["credit_to_balance"] == 0
    assert [p["amount"] for p in terminated["data"]["periods"]] == [32_876, 130_000]


def test_the_credit_above_the_subtotal_is_on_the_stream_as_each_services_share(
    services: Services,
) -> None:
    org = crm_with_its_renewal(services)
    receipt = buy(services, org, MONTHLY_FIVE_SEATS)
    assert (receipt["credit"], receipt["unapplied_credit"]) == (37_500, 162_876 - 37_500)
    events = services.app.organization_events(org, limit=1000)["events"]
    (terminated,) = [e["data"] for e in events if e["type"] == "StandaloneContractTerminated"]
    assert terminated["credit_applied"] + terminated["credit_to_balance"] == 162_876
    assert terminated["credit_applied"] == receipt["credit"]
    assert terminated["credit_to_balance"] == receipt["unapplied_credit"]


def test_the_views_show_the_service_paid_across_its_periods_and_then_in_the_bundle(
    services: Services, clock: ManualClock
) -> None:
    org = crm_with_its_renewal(services)
    clock.advance(timedelta(days=110))  # 2027-03-16: in the renewal period
    crm = next(s for s in services.read_model.access(org)["services"] if s["code"] == "crm")
    assert (crm["edition"], crm["contract"], crm["access"]) == ("paid", "standalone", "standalone")

    buy(services, org, YEARLY)
    crm = next(s for s in services.read_model.access(org)["services"] if s["code"] == "crm")
    assert (crm["edition"], crm["contract"]) == ("paid", "bundle")

    facts = services.app.facts(org)
    assert all(p.terminated for p in facts.subscriptions)
    assert facts_from_dict(facts_to_dict(facts)) == facts
    row = services.read_model.views.access_row(str(org))
    assert row is not None
    assert row.facts == facts
    assert not rebuild_views(services.app, services.read_model.views, apply=False).differences
