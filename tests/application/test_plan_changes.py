"""Mid-term plan changes on every store (SPEC §11): the charge in §5's order, the
scheduled decrease bought by the renewal, replays, declines and reconcile.

Charges go to the real sandbox card on file: the reusable payment method the
upgrade's charge made (or ``PUT .../payment-method``'s service saved)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.idempotency import IdempotencyKeyReused
from application.payments import NO_CHARGE, PaymentDeclined, SandboxGateway
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.contract_change import WantedChange
from domain.errors import InvalidRequest, StateConflict
from domain.facts import ContractTerms, ScheduledChange
from domain.quote import AddOnRequest, UpgradeRequest
from tests.application.helpers import CONTACT, event_types, register

MONTHLY_FOUR = UpgradeRequest("monthly", 4, ())


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


def buy(
    services: Services,
    token: str = "tok_visa",
    org: UUID | None = None,
    request: UpgradeRequest = MONTHLY_FOUR,
) -> UUID:
    """Bought (monthly with 4 seats) with ``token``: its charge puts the card on file."""
    org = org or register(services.app)
    total = services.app.quote(org, request).total
    services.checkouts.purchase(
        org,
        by="u-owner",
        purchase=PurchaseRequest(request, CONTACT, total, token),
        idempotency_key=None,
    )
    return org


def renew(services: Services, org: UUID) -> None:
    """The period's end: the renewal recorded by the sweep's batch (charged, invoiced)."""
    report = services.renewals.settle_one(org)
    assert report.renewed == [str(org)], report.to_dict()


def terms(services: Services, org: UUID) -> ContractTerms:
    contract = services.app.facts(org).contract
    assert contract is not None
    return contract.terms


def charges(services: Services) -> int:
    gateway = services.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway.count_charges()


def events_of(services: Services, org: UUID, kind: str) -> list[dict[str, Any]]:
    found = services.app.organization_events(org, limit=1000)["events"]
    return [e["data"] for e in found if e["type"] == kind]


def change(
    services: Services, org: UUID, wanted: WantedChange, key: str | None = "key-1"
) -> dict[str, Any]:
    total = services.plan_changes.quote(org, wanted)["total"]
    return services.plan_changes.change(
        org, by="u-owner", wanted=wanted, expected_total=total, idempotency_key=key
    )


def test_more_seats_are_charged_to_the_card_on_file_once_with_an_invoice(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    card = terms(services, org).payment_method
    assert card.reference is not None
    assert card.reference.startswith("pm_")  # the upgrade's charge made it
    clock.advance(timedelta(days=10))  # 20 of the month's 30 days remain

    answer = change(services, org, WantedChange(seats=6))

    assert answer["status"] == "changed"
    (started,) = events_of(services, org, "ChangeChargeStarted")
    assert started["payment_method"] == card.reference
    assert (answer["payment"]["brand"], answer["payment"]["last4"]) == ("visa", "4242")
    assert answer["total"] == 11_000  # floor(2 × 7,500 × 20 / 30) = 10,000 + 10 %
    assert answer["payment"]["charge_id"].startswith("ch_")
    assert answer["contract"]["seats"] == 6
    assert charges(services) == 2  # the upgrade, then the change
    assert event_types(services.app, org)[-2:] == ["ChangeChargeStarted", "BundleChanged"]
    (changed,) = events_of(services, org, "BundleChanged")
    assert changed["invoice"]["number"] == answer["invoice_number"]
    assert changed["invoice"]["kind"] == "change"
    assert changed["invoice"]["total"] == 11_000
    assert terms(services, org).seats == 6


def test_a_decrease_waits_for_the_renewal_which_buys_it(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=3))

    answer = change(services, org, WantedChange(seats=2))

    assert answer["status"] == "scheduled"
    assert answer["total"] == 0
    assert answer["payment"] is None
    assert answer["contract"]["scheduled_change"] == {
        "seats": 2,
        "add_ons": None,
        "billing_period": None,
    }
    assert charges(services) == 1
    clock.set(terms(services, org).current_period_end)
    renew(services, org)
    (renewed,) = events_of(services, org, "BundleRenewed")
    assert renewed["seats"] == 2
    assert renewed["subtotal"] == 15_000
    assert terms(services, org).seats == 2
    assert terms(services, org).scheduled_change is None


def test_the_same_key_answers_the_first_change_again_without_charging_twice(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=10))
    first = change(services, org, WantedChange(seats=6))

    again = services.plan_changes.change(
        org,
        by="u-owner",
        wanted=WantedChange(seats=6),
        expected_total=first["total"],
        idempotency_key="key-1",
    )

    assert again["invoice_number"] == first["invoice_number"]
    assert again["payment"] == first["payment"]
    assert again["position"] == first["position"]
    assert charges(services) == 2
    with pytest.raises(IdempotencyKeyReused):
        services.plan_changes.change(
            org,
            by="u-owner",
            wanted=WantedChange(seats=9),
            expected_total=1,
            idempotency_key="key-1",
        )


def test_a_declined_card_records_the_failure_and_keeps_the_terms(
    services: Services, clock: ManualClock
) -> None:
    # The card's first charge (the upgrade) succeeds; every later one is declined.
    org = buy(services, token="tok_visa_renewalDeclined")
    clock.advance(timedelta(days=10))

    with pytest.raises(PaymentDeclined) as declined:
        change(services, org, WantedChange(seats=6))

    assert declined.value.code == "card_declined"
    assert event_types(services.app, org)[-2:] == ["ChangeChargeStarted", "ChangeChargeFailed"]
    assert terms(services, org).seats == 4
    # the contract is free for the next change
    assert change(services, org, WantedChange(seats=3), key="key-2")["status"] == "scheduled"


def test_a_wrong_expected_total_is_quote_changed_and_charges_nothing(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=10))

    with pytest.raises(StateConflict) as refused:
        services.plan_changes.change(
            org, by="u-owner", wanted=WantedChange(seats=6), expected_total=1, idempotency_key="k"
        )

    assert refused.value.code == "quote_changed"
    assert refused.value.details["quote"]["total"] == 11_000
    assert charges(services) == 1
    assert "ChangeChargeStarted" not in event_types(services.app, org)


def test_no_change_is_refused(services: Services) -> None:
    org = buy(services)

    with pytest.raises(InvalidRequest) as refused:
        services.plan_changes.quote(org, WantedChange(seats=4))

    assert refused.value.code == "no_change"


def test_a_credit_balance_that_covers_the_change_charges_nothing_and_still_invoices(
    services: Services, clock: ManualClock
) -> None:
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=4,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-owner",
        admins=[],
    )
    buy(services, org=org)  # the credit above the first month opens the balance
    balance = terms(services, org).credit_balance
    assert balance > 0
    assert charges(services) == 0  # the upgrade cost nothing: no charge, no card on file
    clock.advance(timedelta(days=10))

    answer = change(services, org, WantedChange(seats=6))

    assert answer["total"] == 0
    assert answer["payment"] == NO_CHARGE
    assert charges(services) == 0
    (changed,) = events_of(services, org, "BundleChanged")
    assert changed["invoice"]["payment"] == {"status": "no_charge"}
    assert terms(services, org).credit_balance == balance - changed["credit_applied"]


def test_monthly_to_yearly_starts_a_yearly_period_now(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=10))

    answer = change(services, org, WantedChange(billing_period="yearly"))

    assert answer["new_period"] is True
    now = terms(services, org)
    assert (now.billing_period, now.current_period_start) == ("yearly", clock.now())
    assert answer["total"] == 294_800  # 288,000 − 20,000 unused + 10 %


def test_reconcile_finishes_a_change_charged_before_a_crash(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=10))
    wanted = WantedChange(seats=6)
    total = services.plan_changes.quote(org, wanted)["total"]
    _result, change_id, _quote = services.app.begin_plan_change(
        org, by="u-owner", wanted=wanted, expected_total=total, idempotency_key="crashed"
    )
    card = terms(services, org).payment_method.reference
    assert card is not None
    services.gateway.charge(change_id, total, "JPY", card, "charged, then the process died")

    clock.advance(timedelta(minutes=5))
    assert services.plan_changes.reconcile().left_in_flight == [change_id]
    clock.advance(timedelta(minutes=10))
    report = services.plan_changes.reconcile()

    assert report.completed == [change_id]
    assert charges(services) == 2
    assert terms(services, org).seats == 6
    # the customer's retry with the same key hears the recorded change
    again = services.plan_changes.change(
        org, by="u-owner", wanted=wanted, expected_total=total, idempotency_key="crashed"
    )
    assert again["status"] == "changed"
    assert charges(services) == 2


def test_reconcile_gives_up_a_change_whose_charge_never_happened(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    clock.advance(timedelta(days=10))
    wanted = WantedChange(seats=6)
    total = services.plan_changes.quote(org, wanted)["total"]
    _result, change_id, _quote = services.app.begin_plan_change(
        org, by="u-owner", wanted=wanted, expected_total=total, idempotency_key="died"
    )
    clock.advance(timedelta(minutes=11))

    assert services.plan_changes.reconcile().failed == [change_id]
    assert terms(services, org).seats == 4
    assert terms(services, org).scheduled_change is None
    assert event_types(services.app, org)[-1] == "ChangeChargeFailed"


def test_a_change_while_past_due_is_refused(services: Services, clock: ManualClock) -> None:
    org = buy(services)
    clock.set(terms(services, org).current_period_end)
    _result, renewal_id, _charge = services.app.begin_renewal(org)
    services.app.fail_renewal(org, renewal_id=renewal_id, reason="card_declined")

    with pytest.raises(StateConflict) as refused:
        services.plan_changes.quote(org, WantedChange(seats=6))

    assert refused.value.code == "payment_past_due"


def test_the_scheduled_change_replaces_the_earlier_one(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    change(services, org, WantedChange(seats=2), key="a")
    change(services, org, WantedChange(seats=3), key="b")

    assert terms(services, org).scheduled_change == ScheduledChange(seats=3)
    first, second = events_of(services, org, "BundleChangeScheduled")
    assert second["replaces"] == first["scheduled_change"]


STORAGE = "storage-10gb"
WITH_STORAGE = UpgradeRequest("monthly", 4, (AddOnRequest(STORAGE, 2),))


def with_credit_balance(services: Services) -> UUID:
    """Bought with a standalone plan whose credit exceeds the first month."""
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=4,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-owner",
        admins=[],
    )
    return buy(services, org=org)


#: Every kind of change: (what was bought, the wanted change, the answer's status).
CHANGE_KINDS = {
    "more seats": (MONTHLY_FOUR, WantedChange(seats=6), "changed"),
    "a new add-on": (MONTHLY_FOUR, WantedChange(add_ons=(AddOnRequest(STORAGE, 1),)), "changed"),
    "monthly to yearly": (MONTHLY_FOUR, WantedChange(billing_period="yearly"), "changed"),
    "fewer seats": (MONTHLY_FOUR, WantedChange(seats=2), "scheduled"),
    "a removed add-on": (WITH_STORAGE, WantedChange(add_ons=()), "scheduled"),
    "yearly to monthly": (
        UpgradeRequest("yearly", 4, ()),
        WantedChange(billing_period="monthly"),
        "scheduled",
    ),
    "more seats and a removed add-on": (
        WITH_STORAGE,
        WantedChange(seats=6, add_ons=()),
        "changed",
    ),
}


@pytest.mark.parametrize("kind", [*CHANGE_KINDS, "covered by the credit balance"])
def test_a_lost_answer_is_heard_again_with_the_same_key_and_nothing_recorded_twice(
    services: Services, clock: ManualClock, kind: str
) -> None:
    if kind == "covered by the credit balance":
        bought, wanted, status = MONTHLY_FOUR, WantedChange(seats=6), "changed"
        org = with_credit_balance(services)
    else:
        bought, wanted, status = CHANGE_KINDS[kind]
        org = buy(services, request=bought)
    clock.advance(timedelta(days=10))
    first = change(services, org, wanted, key="lost-answer")
    assert first["status"] == status
    recorded = event_types(services.app, org)
    charged = charges(services)
    # The client retries later; meanwhile the contract moved on (another card).
    clock.advance(timedelta(days=1))
    services.renewals.change_payment_method(org, by="u-owner", payment_token="tok_mastercard")

    again = services.plan_changes.change(
        org,
        by="u-owner",
        wanted=wanted,
        expected_total=first["total"],
        idempotency_key="lost-answer",
    )

    assert again == first
    assert event_types(services.app, org) == [*recorded, "PaymentMethodChanged"]
    assert charges(services) == charged


@pytest.mark.parametrize(
    ("other", "expected_total"),
    [
        (WantedChange(seats=3), 0),  # another decrease
        (WantedChange(seats=6), 0),  # an increase, not what was scheduled
        (WantedChange(seats=2), 5),  # another total
    ],
)
def test_a_scheduled_changes_key_with_another_change_is_reused(
    services: Services, other: WantedChange, expected_total: int
) -> None:
    org = buy(services)
    change(services, org, WantedChange(seats=2), key="decrease")
    recorded = event_types(services.app, org)

    with pytest.raises(IdempotencyKeyReused):
        services.plan_changes.change(
            org,
            by="u-owner",
            wanted=other,
            expected_total=expected_total,
            idempotency_key="decrease",
        )
    with pytest.raises(IdempotencyKeyReused):  # another user with the same key
        services.plan_changes.change(
            org,
            by="u-admin",
            wanted=WantedChange(seats=2),
            expected_total=0,
            idempotency_key="decrease",
        )

    assert event_types(services.app, org) == recorded


def test_a_scheduled_change_replayed_after_a_later_change_answers_the_first(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    first = change(services, org, WantedChange(seats=2), key="a")
    change(services, org, WantedChange(seats=3), key="b")  # replaces the first

    again = services.plan_changes.change(
        org, by="u-owner", wanted=WantedChange(seats=2), expected_total=0, idempotency_key="a"
    )

    assert again == first
    assert again["contract"]["scheduled_change"]["seats"] == 2  # as the first answer said
    assert terms(services, org).scheduled_change == ScheduledChange(seats=3)
