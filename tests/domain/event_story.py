"""One organization's story that records every one of the 12 event types,
with fixed ids and a manual clock, so its stored form is byte-for-byte stable."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from tests.domain.builders import CATALOG, CONTACT, ORG_ID, PAYMENT, T0, days, yearly_request

MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def memory_app() -> SuiteSubscriptions:
    return SuiteSubscriptions(MEMORY, clock=ManualClock(T0), catalog=CATALOG)


def record_every_event_type(app: SuiteSubscriptions) -> UUID:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    org = UUID(
        app.register_organization(
            name="Acme", country="JP", owner_user_id="u-owner", organization_id=ORG_ID
        ).organization_id
    )
    app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-alice",
        admins=["u-carol"],
        by="operator",
    )
    app.record_standalone_subscription(
        org,
        service="desk",
        seats=3,
        billing_period="monthly",
        amount_paid=9_000,
        period_start=date(2026, 12, 10),
        period_end=date(2027, 1, 10),
        super_admin="u-bob",
        admins=[],
    )
    app.change_service_admins(
        org, service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob", by_operator=False
    )
    app.start_trial(org, by="u-alice")
    clock.advance(days(30))
    app.expire_trial(org)
    clock.advance(days(1))
    app.extend_trial(org, by="u-alice")
    clock.advance(days(2))
    app.cancel_trial(org, by="u-alice")
    request = yearly_request(10, storage_10gb=2)
    total = app.quote(org, request).total
    app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="idem-0001",
        checkout_id="chk_0001",
    )
    app.fail_upgrade_checkout(org, checkout_id="chk_0001", reason="card_declined")
    app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="idem-0002",
        checkout_id="chk_0002",
    )
    app.complete_upgrade_checkout(org, checkout_id="chk_0002", payment=PAYMENT)
    return org


def stored_events(app: SuiteSubscriptions, org: UUID) -> list[StoredEvent]:
    return list(app.recorder.select_events(org))
