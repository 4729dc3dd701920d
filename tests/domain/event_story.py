"""Stories that record every event type, with fixed ids and a manual clock,
so their stored form is byte-for-byte stable: one organization's whole story
(the 12 event types of SPEC §3; Desk holds two plan periods at the upgrade),
and a second organization's reminders (recorded by the sweep, SPEC §12)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.contract_change import WantedChange
from domain.quote import AddOnRequest
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
CHANGES_ORG_ID = UUID("7d0c5a1e-0000-4000-8000-000000000004")
#: The plan-change story's own fixed start.
CHANGES_START = datetime(2028, 4, 1, 9, 0, tzinfo=UTC)
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
    # Desk's next month, paid before the upgrade: a second period (SPEC §11),
    # credited in full beside the unused days of the running one.
    app.record_standalone_subscription(
        org,
        service="desk",
        seats=3,
        billing_period="monthly",
        amount_paid=9_000,
        period_start=date(2027, 1, 10),
        period_end=date(2027, 2, 10),
        super_admin="u-alice",
        admins=["u-bob"],
    )
    total = app.quote(org, request).total
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


def record_plan_changes(app: SuiteSubscriptions) -> UUID:
    """A fourth organization buys 4 seats monthly, adds 2 seats mid-month (charged
    pro rata, with an invoice), schedules a decrease to 3 seats, fails to pay a
    new add-on, and switches to a yearly period at once (the unused month credited)."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(CHANGES_START)
    org = UUID(
        app.register_organization(
            name="Delta", country="JP", owner_user_id="u-owner", organization_id=CHANGES_ORG_ID
        ).organization_id
    )
    request = monthly_request(4)
    app.begin_upgrade_checkout(
        org,
        by="u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=app.quote(org, request).total,
        idempotency_key="idem-0401",
        checkout_id="chk_0401",
    )
    app.complete_upgrade_checkout(org, checkout_id="chk_0401", payment=CARD_ON_FILE)
    clock.advance(days(10))
    more_seats = WantedChange(seats=6)
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=more_seats,
        expected_total=app.quote_plan_change(org, more_seats).total,
        idempotency_key="idem-0402",
        change_id="chg_0001",
    )
    app.complete_plan_change(
        org,
        change_id="chg_0001",
        payment={**CARD_ON_FILE, "charge_id": "ch_0401"},
        invoice_number="SS-2028-000101",
        issued_at=clock.now(),
    )
    clock.advance(days(1))
    fewer_seats = WantedChange(seats=3)
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=fewer_seats,
        expected_total=0,
        idempotency_key="idem-0403",
        change_id="chg_0002",
    )
    clock.advance(days(1))
    portal = WantedChange(add_ons=(AddOnRequest("extra-portal", 1),))
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=portal,
        expected_total=app.quote_plan_change(org, portal).total,
        idempotency_key="idem-0404",
        change_id="chg_0003",
    )
    app.fail_plan_change(org, change_id="chg_0003", reason="card_declined")
    yearly = WantedChange(billing_period="yearly")
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=yearly,
        expected_total=app.quote_plan_change(org, yearly).total,
        idempotency_key="idem-0405",
        change_id="chg_0004",
    )
    app.complete_plan_change(
        org,
        change_id="chg_0004",
        payment={**CARD_ON_FILE, "charge_id": "ch_0402"},
        invoice_number="SS-2028-000102",
        issued_at=clock.now(),
    )
    return org


def stored_events(app: SuiteSubscriptions, org: UUID) -> list[StoredEvent]:
    return list(app.recorder.select_events(org))
