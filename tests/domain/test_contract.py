"""The paid contract's life (SPEC §11) on the aggregate: pure rules and stories.

Renewal amounts, the credit balance, the dunning schedule and period ends
are pure functions (with hypothesis properties: money is neither created
nor lost, the balance never goes negative); the stories walk one
organization through renewals, dunning, cancellation and buying again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import events as ev
from domain.access_view import access_view
from domain.bundle_state import start_trial_refusal, upgrade_refusal
from domain.contract import (
    ENDED_CANCELLED,
    ENDED_PAYMENT_FAILED,
    apply_credit,
    contract_block,
    contract_due_at,
    next_attempt_at,
    next_period_end,
    renewal_charge,
    renewal_due,
)
from domain.errors import StateConflict
from domain.facts import BundleState, ScheduledChange, facts_from_dict, facts_to_dict
from domain.organization import Organization
from domain.quote import UpgradeRequest, add_calendar_months
from tests.domain.builders import CATALOG, CONTACT, OWNER, PAYMENT, T0, days, register

BUNDLE = CATALOG.bundle
CARD = {**PAYMENT, "payment_method": "pm_test_1"}


def bought(
    request: UpgradeRequest | None = None,
    *,
    at: datetime = T0,
    payment: dict[str, Any] | None = None,
) -> Organization:
    """An organization that bought the bundle without a trial at ``at``."""
    org = register(at=at)
    request = request or UpgradeRequest("monthly", 4)
    quote = org.quote(request, at=at, catalog=CATALOG)
    org.begin_checkout(
        checkout_id="chk_1",
        by=OWNER,
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=at,
        catalog=CATALOG,
    )
    org.complete_checkout(
        checkout_id="chk_1",
        payment=payment or CARD,
        at=at,
        invoice_number=f"SS-{at.year}-000001",  # the allocator is the application's
        invoice_issued_at=at,
        catalog=CATALOG,
    )
    return org


def renew(org: Organization, renewal_id: str, at: datetime, number: str) -> None:
    assert org.begin_renewal(renewal_id=renewal_id, at=at, catalog=CATALOG) is not None
    org.complete_renewal(
        renewal_id=renewal_id,
        payment={**CARD, "charge_id": f"ch_{renewal_id}"},
        invoice_number=number,
        issued_at=at,
        at=at,
        catalog=CATALOG,
    )


def fail(org: Organization, renewal_id: str, at: datetime) -> None:
    assert org.begin_renewal(renewal_id=renewal_id, at=at, catalog=CATALOG) is not None
    org.fail_renewal(renewal_id=renewal_id, reason="card_declined", at=at, catalog=CATALOG)


def types(org: Organization) -> list[str]:
    return [type(e).__name__ for e in org.collect_events()]


def end_of(org: Organization) -> datetime:
    assert org.facts.contract is not None
    return org.facts.contract.terms.current_period_end


# -- pure rules ------------------------------------------------------------------------


def test_periods_of_a_contract_started_on_a_months_last_day_do_not_drift() -> None:
    anchor = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)
    ends = [add_calendar_months(anchor, 1)]
    for _ in range(4):
        ends.append(next_period_end(anchor, ends[-1], "monthly"))
    assert [e.date().isoformat() for e in ends] == [
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
    ]


@given(
    anchor=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    periods=st.integers(min_value=1, max_value=60),
    period=st.sampled_from(["monthly", "yearly"]),
)
def test_the_next_period_end_is_the_anchors_next_whole_period(
    anchor: datetime, periods: int, period: str
) -> None:
    months = 1 if period == "monthly" else 12
    current = add_calendar_months(anchor, periods * months)
    nxt = next_period_end(anchor, current, period)
    assert nxt == add_calendar_months(anchor, (periods + 1) * months)
    assert nxt > current


def test_the_dunning_schedule_is_the_period_end_then_each_retry_day() -> None:
    end = datetime(2027, 1, 1, 9, tzinfo=UTC)
    attempts = [next_attempt_at(end, failed, (1, 3, 7)) for failed in range(5)]
    assert attempts == [end, end + days(1), end + days(3), end + days(7), None]


@given(st.lists(st.integers(min_value=1, max_value=60), unique=True).map(sorted))
def test_the_dunning_schedule_has_one_attempt_per_retry_day_in_order(retry: list[int]) -> None:
    end = datetime(2027, 1, 1, 9, tzinfo=UTC)
    schedule = []
    failed = 0
    while (moment := next_attempt_at(end, failed, tuple(retry))) is not None:
        schedule.append(moment)
        failed += 1
    assert len(schedule) == len(retry) + 1
    assert schedule == sorted(schedule)
    assert schedule[0] == end


@given(
    subtotal=st.integers(min_value=0, max_value=10**9),
    balance=st.integers(min_value=0, max_value=10**9),
    rate=st.integers(min_value=0, max_value=100),
)
def test_credit_is_used_first_never_below_zero_and_no_money_is_made_or_lost(
    subtotal: int, balance: int, rate: int
) -> None:
    applied, tax, total = apply_credit(subtotal, balance, rate)
    assert 0 <= applied <= min(balance, subtotal)
    assert applied == min(balance, subtotal)  # the balance is used first, as far as it goes
    assert balance - applied >= 0
    assert tax == (subtotal - applied) * rate // 100  # tax once, on what is left
    # every yen of the subtotal is either paid (in the total) or taken from the balance
    assert total - tax + applied == subtotal


@given(
    seats=st.integers(min_value=1, max_value=10_000),
    storage=st.integers(min_value=0, max_value=50),
    period=st.sampled_from(["monthly", "yearly"]),
    balance=st.integers(min_value=0, max_value=10**8),
)
def test_a_renewal_charges_one_period_at_catalog_prices_minus_the_balance(
    seats: int, storage: int, period: str, balance: int
) -> None:
    add_ons = (("storage-10gb", storage),) if storage else ()
    org = bought(UpgradeRequest("monthly", 1))
    contract = org.facts.contract
    assert contract is not None
    contract = contract.with_terms(
        billing_period=period, seats=seats, add_ons=add_ons, credit_balance=balance
    )
    charge = renewal_charge(BUNDLE, contract)
    months = 1 if period == "monthly" else 12
    subtotal = seats * BUNDLE.prices[period] * months + storage * 1000 * months
    assert charge.subtotal == subtotal
    assert charge.credit_applied == min(balance, subtotal)
    assert charge.tax == (subtotal - charge.credit_applied) // 10
    assert charge.total == subtotal - charge.credit_applied + charge.tax
    assert charge.period_start == contract.terms.current_period_end


def test_a_renewal_uses_the_scheduled_change() -> None:
    org = bought(UpgradeRequest("yearly", 10))
    contract = org.facts.contract
    assert contract is not None
    contract = contract.with_terms(
        scheduled_change=ScheduledChange(
            seats=6, add_ons=(("extra-portal", 1),), billing_period="monthly"
        )
    )
    charge = renewal_charge(BUNDLE, contract)
    assert (charge.billing_period, charge.seats, charge.add_ons) == (
        "monthly",
        6,
        (("extra-portal", 1),),
    )
    assert charge.subtotal == 6 * 7500 + 3000
    assert charge.period_end == add_calendar_months(contract.terms.current_period_end, 1)


# -- the contract block ------------------------------------------------------------------


def test_the_contract_block_shows_the_terms_from_active_on() -> None:
    org = bought(UpgradeRequest("monthly", 4))
    block = access_view(org.facts, CATALOG, T0).to_dict()["bundle"]["contract"]
    assert block == {
        "billing_period": "monthly",
        "seats": 4,
        "add_ons": [],
        "current_period_start": T0.isoformat(),
        "current_period_end": add_calendar_months(T0, 1).isoformat(),
        "cancel_at_period_end": False,
        "scheduled_change": None,
        "credit_balance": 0,
        "payment_method": {"brand": "visa", "last4": "4242"},
    }
    assert "contract" not in access_view(register().facts, CATALOG, T0).to_dict()["bundle"]


def test_facts_with_a_contract_round_trip_through_their_json_form() -> None:
    org = bought()
    fail(org, "ren_1", end_of(org))
    assert facts_from_dict(facts_to_dict(org.facts)) == org.facts


def test_a_contract_stored_in_the_first_form_still_loads() -> None:
    data = facts_to_dict(bought().facts)
    data["contract"] = {
        "checkout_id": "chk_1",
        "billing_period": "monthly",
        "seats": 4,
        "add_ons": [["storage-10gb", 1]],
        "starts_at": T0.isoformat(),
        "ends_at": add_calendar_months(T0, 1).isoformat(),
        "total": 34100,
        "charge_id": "ch_1",
    }
    contract = facts_from_dict(data).contract
    assert contract is not None
    assert contract.terms.add_ons == (("storage-10gb", 1),)
    assert contract.ends_at == add_calendar_months(T0, 1)
    assert contract.anchor == T0


# -- renewal -------------------------------------------------------------------------------


def test_nothing_renews_before_the_period_end() -> None:
    org = bought()
    before = end_of(org) - timedelta(seconds=1)
    assert org.begin_renewal(renewal_id="ren_1", at=before, catalog=CATALOG) is None
    assert contract_due_at(org.facts) == end_of(org)


def test_a_renewal_records_intent_then_outcome_with_an_invoice() -> None:
    org = bought(UpgradeRequest("monthly", 4))
    old_end = end_of(org)
    org.collect_events()
    renew(org, "ren_1", old_end + days(0.5), "SS-2026-000002")
    assert types(org) == ["RenewalChargeStarted", "BundleRenewed"]
    contract = org.facts.contract
    assert contract is not None
    assert contract.terms.current_period_start == old_end
    assert contract.terms.current_period_end == add_calendar_months(T0, 2)
    assert contract.charge_id == "ch_ren_1"
    assert org.facts.bundle_state == BundleState.ACTIVE


def test_the_renewed_event_holds_the_amounts_and_the_invoice_adds_up() -> None:
    org = bought(UpgradeRequest("monthly", 4))
    contract = org.facts.contract
    assert contract is not None
    org.facts = org.facts.updated(contract=contract.with_terms(credit_balance=10_000))
    org.collect_events()
    renew(org, "ren_1", end_of(org), "SS-2026-000002")
    renewed = org.collect_events()[-1]
    assert isinstance(renewed, ev.BundleRenewed)
    assert (renewed.subtotal, renewed.credit_applied, renewed.tax, renewed.total) == (
        30000,
        10000,
        2000,
        22000,
    )
    invoice = renewed.invoice
    assert invoice["number"] == "SS-2026-000002"
    assert invoice["total"] == renewed.total
    assert invoice["credits"][0]["source"] == "credit_balance"
    assert invoice["payment"] == {"status": "charged", "brand": "visa", "last4": "4242"}
    new_contract = org.facts.contract
    assert new_contract is not None
    assert new_contract.terms.credit_balance == 0


def test_a_renewal_the_balance_covers_charges_nothing_and_still_invoices() -> None:
    org = bought(UpgradeRequest("monthly", 1))
    contract = org.facts.contract
    assert contract is not None
    org.facts = org.facts.updated(contract=contract.with_terms(credit_balance=100_000))
    charge = org.begin_renewal(renewal_id="ren_1", at=end_of(org), catalog=CATALOG)
    assert charge is not None
    assert charge.total == 0
    org.complete_renewal(
        renewal_id="ren_1",
        payment={"gateway": None, "charge_id": None, "brand": None, "last4": None},
        invoice_number="SS-2026-000002",
        issued_at=end_of(org),
        at=end_of(org),
        catalog=CATALOG,
    )
    renewed = org.collect_events()[-1]
    assert isinstance(renewed, ev.BundleRenewed)
    assert renewed.invoice["payment"] == {"status": "no_charge"}
    after = org.facts.contract
    assert after is not None
    assert after.terms.credit_balance == 100_000 - 7500
    # the card on file stays what it was
    assert after.terms.payment_method.reference == "pm_test_1"


def test_settling_a_renewal_twice_records_it_once() -> None:
    org = bought()
    renew(org, "ren_1", end_of(org), "SS-2026-000002")
    again = org.complete_renewal(
        renewal_id="ren_1",
        payment=CARD,
        invoice_number="SS-2026-000002",
        issued_at=T0,
        at=T0,
        catalog=CATALOG,
    )
    assert again is False
    assert org.fail_renewal(renewal_id="ren_1", reason="x", at=T0, catalog=CATALOG) is False


def test_a_second_intent_is_not_recorded_while_one_is_in_flight() -> None:
    org = bought()
    end = end_of(org)
    assert org.begin_renewal(renewal_id="ren_1", at=end, catalog=CATALOG) is not None
    assert org.begin_renewal(renewal_id="ren_2", at=end, catalog=CATALOG) is None
    assert not renewal_due(org.facts, end)


# -- dunning -------------------------------------------------------------------------------


def test_failed_renewals_are_retried_on_schedule_then_the_contract_ends() -> None:
    org = bought()
    end = end_of(org)
    org.collect_events()
    fail(org, "ren_1", end)
    terms = org.facts.contract.terms  # type: ignore[union-attr]
    assert org.facts.bundle_state == BundleState.PAST_DUE
    assert terms.past_due_since == end
    assert terms.next_payment_attempt_at == end + days(1)
    # access stays during the grace period
    view = access_view(org.facts, CATALOG, end)
    assert {(s.edition, s.contract, s.access) for s in view.services} == {
        ("paid", "bundle", "bundle")
    }
    assert (
        view.to_dict()["bundle"]["contract"]["next_payment_attempt_at"]
        == (end + days(1)).isoformat()
    )
    assert org.begin_renewal(renewal_id="early", at=end + days(0.9), catalog=CATALOG) is None
    fail(org, "ren_2", end + days(1))
    fail(org, "ren_3", end + days(3))
    assert org.facts.contract.terms.next_payment_attempt_at == end + days(7)  # type: ignore[union-attr]
    fail(org, "ren_4", end + days(7))
    recorded = types(org)
    assert recorded[-len(CATALOG.service_codes) - 1 :] == [
        "BundleEnded",
        *["ServiceDowngradedToFree"] * len(CATALOG.service_codes),
    ]
    assert recorded.count("RenewalPaymentFailed") == 4
    assert org.facts.bundle_state == BundleState.ENDED
    contract = org.facts.contract
    assert contract is not None
    assert contract.end_reason == ENDED_PAYMENT_FAILED
    view = access_view(org.facts, CATALOG, end + days(7))
    assert {(s.edition, s.access) for s in view.services} == {("free", "standalone")}
    assert contract_block(org.facts) is not None
    assert "past_due_since" not in view.to_dict()["bundle"]["contract"]


def test_paid_late_the_new_period_still_starts_at_the_old_end() -> None:
    org = bought()
    end = end_of(org)
    fail(org, "ren_1", end)
    renew(org, "ren_2", end + days(1), "SS-2026-000002")
    contract = org.facts.contract
    assert contract is not None
    assert org.facts.bundle_state == BundleState.ACTIVE
    assert contract.terms.current_period_start == end
    assert contract.terms.current_period_end == add_calendar_months(T0, 2)
    assert contract.terms.past_due_since is None
    assert contract.failed_attempts == 0


def test_a_retry_after_a_card_change_leaves_the_schedule_as_it_was() -> None:
    org = bought()
    end = end_of(org)
    fail(org, "ren_1", end)
    org.change_payment_method(
        by=OWNER, gateway="sandbox", payment_method="pm_2", brand="visa", last4="4242", at=end
    )
    assert org.begin_renewal(renewal_id="ren_2", at=end, catalog=CATALOG, retry_now=True)
    org.fail_renewal(renewal_id="ren_2", reason="card_declined", at=end, catalog=CATALOG)
    contract = org.facts.contract
    assert contract is not None
    assert contract.terms.next_payment_attempt_at == end + days(1)
    assert contract.failed_attempts == 1
    assert contract.attempts == 2


# -- cancellation ----------------------------------------------------------------------------


def test_a_cancellation_takes_effect_at_the_period_end_and_can_be_withdrawn() -> None:
    org = bought()
    end = end_of(org)
    org.cancel_contract(by=OWNER, at=T0 + days(3), catalog=CATALOG)
    assert org.facts.contract.terms.cancel_at_period_end  # type: ignore[union-attr]
    with pytest.raises(StateConflict) as twice:
        org.cancel_contract(by=OWNER, at=T0 + days(3), catalog=CATALOG)
    assert twice.value.code == "cancellation_already_scheduled"
    # a contract set to cancel does not renew
    assert org.begin_renewal(renewal_id="ren_1", at=end, catalog=CATALOG) is None
    org.withdraw_cancellation(by=OWNER, at=T0 + days(4))
    assert not org.facts.contract.terms.cancel_at_period_end  # type: ignore[union-attr]
    with pytest.raises(StateConflict) as nothing:
        org.withdraw_cancellation(by=OWNER, at=T0 + days(4))
    assert nothing.value.code == "no_cancellation_scheduled"
    org.cancel_contract(by=OWNER, at=T0 + days(5), catalog=CATALOG)
    assert org.end_at_period_end(at=end - timedelta(seconds=1), catalog=CATALOG) is False
    with pytest.raises(StateConflict) as late:
        org.withdraw_cancellation(by=OWNER, at=end)
    assert late.value.code == "contract_period_ended"
    org.collect_events()
    assert org.end_at_period_end(at=end, catalog=CATALOG) is True
    assert types(org) == ["BundleEnded"] + ["ServiceDowngradedToFree"] * len(CATALOG.service_codes)
    contract = org.facts.contract
    assert contract is not None
    assert contract.end_reason == ENDED_CANCELLED
    assert contract.ended_at == end


def test_a_cancellation_while_past_due_ends_the_contract_at_once() -> None:
    org = bought()
    end = end_of(org)
    fail(org, "ren_1", end)
    org.collect_events()
    org.cancel_contract(by=OWNER, at=end + days(0.5), catalog=CATALOG)
    assert types(org)[0] == "BundleEnded"
    assert org.facts.bundle_state == BundleState.ENDED
    ended = org.facts.contract
    assert ended is not None
    assert ended.end_reason == ENDED_CANCELLED


def test_a_cancellation_waits_for_a_renewal_in_flight() -> None:
    org = bought()
    org.begin_renewal(renewal_id="ren_1", at=end_of(org), catalog=CATALOG)
    with pytest.raises(StateConflict) as busy:
        org.cancel_contract(by=OWNER, at=end_of(org), catalog=CATALOG)
    assert busy.value.code == "renewal_in_progress"


def test_only_someone_with_bundle_rights_cancels() -> None:
    org = bought()
    with pytest.raises(Exception, match="lacks admin rights") as refused:
        org.cancel_contract(by="u-stranger", at=T0, catalog=CATALOG)
    assert getattr(refused.value, "code", None) == "bundle_action_not_allowed"


# -- after the end -----------------------------------------------------------------------------


def test_after_the_end_the_bundle_is_bought_again_without_a_trial_and_keeps_its_balance() -> None:
    org = bought()
    contract = org.facts.contract
    assert contract is not None
    org.facts = org.facts.updated(contract=contract.with_terms(credit_balance=5_000))
    end = end_of(org)
    org.cancel_contract(by=OWNER, at=T0, catalog=CATALOG)
    org.end_at_period_end(at=end, catalog=CATALOG)
    assert start_trial_refusal(org.facts, end) == "trial_already_used"
    assert upgrade_refusal(org.facts, end) is None
    later = end + days(10)
    request = UpgradeRequest("yearly", 2)
    quote = org.quote(request, at=later, catalog=CATALOG)
    assert quote.credits == ()
    org.begin_checkout(
        checkout_id="chk_2",
        by=OWNER,
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=later,
        catalog=CATALOG,
    )
    org.complete_checkout(
        checkout_id="chk_2",
        payment=CARD,
        at=later,
        invoice_number=f"SS-{later.year}-000003",
        invoice_issued_at=later,
        catalog=CATALOG,
    )
    again = org.facts.contract
    assert again is not None
    assert org.facts.bundle_state == BundleState.ACTIVE
    assert again.terms.credit_balance == 5_000
    assert again.terms.current_period_start == later
    assert again.end_reason is None


def test_the_upgrades_unapplied_credit_opens_the_balance() -> None:
    org = register()
    org.record_standalone_subscription(
        service="crm",
        seats=1,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=T0.date() - timedelta(days=10),
        period_end=T0.date() + timedelta(days=355),
        super_admin=OWNER,
        admins=[],
        by=None,
        at=T0,
        catalog=CATALOG,
    )
    request = UpgradeRequest("monthly", 1)
    quote = org.quote(request, at=T0, catalog=CATALOG)
    assert quote.unapplied_credit > 0
    org.begin_checkout(
        checkout_id="chk_1",
        by=OWNER,
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=T0,
        catalog=CATALOG,
    )
    org.complete_checkout(
        checkout_id="chk_1",
        payment={"gateway": None, "charge_id": None, "brand": None, "last4": None},
        at=T0,
        invoice_number="SS-2026-000001",
        invoice_issued_at=T0,
        catalog=CATALOG,
    )
    contract = org.facts.contract
    assert contract is not None
    assert contract.terms.credit_balance == quote.unapplied_credit
    # the next renewal is paid from the balance first
    charge = org.begin_renewal(renewal_id="ren_1", at=end_of(org), catalog=CATALOG)
    assert charge is not None
    assert charge.credit_applied == min(quote.unapplied_credit, 7500)
