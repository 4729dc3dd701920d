"""Stories that record every event type, with fixed ids and a manual clock,
so their stored form is byte-for-byte stable: one organization's whole story
(the 12 event types of SPEC §3), and a second organization's reminders
(recorded by the sweep, SPEC §12)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from tests.domain.builders import (
    CATALOG,
    CONTACT,
    ORG_ID,
    PAYMENT,
    T0,
    days,
    monthly_request,
    yearly_request,
)

REMINDED_ORG_ID = UUID("7d0c5a1e-0000-4000-8000-000000000002")
CONTRACT_ORG_ID = UUID("7d0c5a1e-0000-4000-8000-000000000003")
#: The contract story starts at its own fixed moment (a month's last day, in a leap year).
CONTRACT_START = datetime(2028, 1, 31, 9, 0, tzinfo=UTC)
CARD_ON_FILE = {**PAYMENT, "payment_method": "pm_0001"}
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


def record_reminders(app: SuiteSubscriptions) -> UUID:
    """A second organization: reminded that its trial ends, buys yearly, is reminded
    of the renewal."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    org = UUID(
        app.register_organization(
            name="Beta", country="JP", owner_user_id="u-owner", organization_id=REMINDED_ORG_ID
        ).organization_id
    )
    app.start_trial(org, by="u-owner")
    clock.advance(days(27))
    app.record_due_reminders(org)
    request = yearly_request(3)
    total = app.quote(org, request).total
    app.begin_upgrade_checkout(
        org,
        by="u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="idem-0101",
        checkout_id="chk_0101",
    )
    app.complete_upgrade_checkout(org, checkout_id="chk_0101", payment=PAYMENT)
    clock.advance(days(365 - 7))
    app.record_due_reminders(org)
    return org


def record_contract_life(app: SuiteSubscriptions) -> UUID:
    """A third organization buys monthly without a trial, changes its card, renews
    (with an invoice), schedules and withdraws a cancellation, fails its next
    renewal and, past due, cancels: the contract ends and every service falls to free."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(CONTRACT_START)
    org = UUID(
        app.register_organization(
            name="Gamma", country="JP", owner_user_id="u-owner", organization_id=CONTRACT_ORG_ID
        ).organization_id
    )
    request = monthly_request(4)
    total = app.quote(org, request).total
    app.begin_upgrade_checkout(
        org,
        by="u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="idem-0201",
        checkout_id="chk_0201",
    )
    app.complete_upgrade_checkout(org, checkout_id="chk_0201", payment=CARD_ON_FILE)
    clock.advance(days(3))
    app.change_payment_method(
        org,
        by="u-owner",
        gateway="sandbox",
        payment_method="pm_0002",
        brand="mastercard",
        last4="4444",
    )
    clock.set(datetime(2028, 2, 29, 9, 0, tzinfo=UTC))
    app.begin_renewal(org, renewal_id="ren_0001")
    app.complete_renewal(
        org,
        renewal_id="ren_0001",
        payment={**PAYMENT, "charge_id": "ch_0002", "payment_method": "pm_0002"},
        invoice_number="SS-2028-000001",
        issued_at=clock.now(),
    )
    clock.advance(days(1))
    app.cancel_contract(org, by="u-owner")
    clock.advance(days(1))
    app.withdraw_contract_cancellation(org, by="u-owner")
    clock.set(datetime(2028, 3, 31, 9, 0, tzinfo=UTC))
    app.begin_renewal(org, renewal_id="ren_0002")
    app.fail_renewal(org, renewal_id="ren_0002", reason="card_declined")
    clock.advance(days(2))
    app.cancel_contract(org, by="u-owner")
    return org


def stored_events(app: SuiteSubscriptions, org: UUID) -> list[StoredEvent]:
    return list(app.recorder.select_events(org))
