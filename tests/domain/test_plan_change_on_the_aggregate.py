"""Mid-term changes on the aggregate (SPEC §11): what is recorded, what is refused,
and what the renewal then buys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from domain.contract import contract_block, renewal_charge, renewal_due
from domain.contract_change import WantedChange
from domain.errors import NotAllowed, StateConflict
from domain.facts import ContractFacts, ScheduledChange, facts_from_dict, facts_to_dict
from domain.invoice import Invoice
from domain.organization import Organization
from domain.quote import AddOnRequest, UpgradeRequest, add_calendar_months
from tests.domain.builders import CATALOG, OWNER, PAYMENT, T0, days, register
from tests.domain.test_contract import CARD, bought, fail

_RECORDED: dict[int, list[Any]] = {}


@pytest.fixture(autouse=True)
def _forget_recorded() -> None:
    _RECORDED.clear()  # ids are reused once a test's organizations are gone


def recorded(org: Organization) -> list[Any]:
    """Every event the organization has triggered so far (collected once, kept)."""
    events = _RECORDED.setdefault(id(org), [])
    events.extend(org.collect_events())
    return events


def types(org: Organization) -> list[str]:
    return [type(e).__name__ for e in recorded(org)]


MONTH_END = add_calendar_months(T0, 1)  # 2026-12-26T09:00Z: a 30-day period


def contract_of(org: Organization) -> ContractFacts:
    assert org.facts.contract is not None
    return org.facts.contract


def begin(
    org: Organization,
    wanted: WantedChange,
    *,
    at: datetime,
    change_id: str = "chg_1",
    by: str = OWNER,
    expected_total: int | None = None,
) -> int:
    quote = org.quote_change(wanted, at=at, catalog=CATALOG)
    org.begin_change(
        change_id=change_id,
        by=by,
        wanted=wanted,
        expected_total=quote.total if expected_total is None else expected_total,
        idempotency_key=f"key-{change_id}",
        at=at,
        catalog=CATALOG,
    )
    return quote.total


def complete(org: Organization, change_id: str, *, at: datetime, number: str) -> bool:
    return org.complete_change(
        change_id=change_id,
        payment={**CARD, "charge_id": f"ch_{change_id}"},
        invoice_number=number,
        issued_at=at,
        at=at,
        catalog=CATALOG,
    )


def last_event_data(org: Organization, name: str) -> dict[str, Any]:
    found = [e for e in recorded(org) if type(e).__name__ == name]
    assert found, f"no {name}"
    return dict(found[-1].__dict__)


def test_an_increase_is_recorded_as_intent_then_bundle_changed_with_its_invoice() -> None:
    org = bought()  # monthly, 4 seats
    at = T0 + days(10)

    total = begin(org, WantedChange(seats=6), at=at)
    assert contract_of(org).pending_change is not None
    assert contract_of(org).terms.seats == 4  # nothing takes effect before the outcome
    assert complete(org, "chg_1", at=at, number="SS-2026-000002")

    assert types(org)[-2:] == ["ChangeChargeStarted", "BundleChanged"]
    contract = contract_of(org)
    assert contract.pending_change is None
    assert contract.terms.seats == 6
    assert contract.terms.current_period_end == MONTH_END  # the period is unchanged
    changed = last_event_data(org, "BundleChanged")
    invoice = Invoice.from_dict(changed["invoice"])
    assert invoice.kind == "change"
    assert invoice.charge_key == "chg_1"
    assert invoice.total == changed["total"] == total == 11_000  # floor(15,000 × 20/30) + 10 %
    assert [line.days for line in invoice.lines] == [20]
    # settling twice records nothing
    assert not complete(org, "chg_1", at=at, number="SS-2026-000003")


def test_a_decrease_is_only_scheduled_and_the_renewal_buys_it() -> None:
    org = bought()
    begin(org, WantedChange(seats=2), at=T0 + days(3))

    assert types(org)[-1] == "BundleChangeScheduled"
    terms = contract_of(org).terms
    assert terms.seats == 4
    assert terms.scheduled_change == ScheduledChange(seats=2)
    block = contract_block(org.facts)
    assert block is not None
    assert block["scheduled_change"] == {"seats": 2, "add_ons": None, "billing_period": None}
    charge = renewal_charge(CATALOG.bundle, contract_of(org))
    assert charge.seats == 2
    assert charge.subtotal == 2 * 7_500


def test_a_later_change_replaces_the_scheduled_one_and_says_what_it_replaced() -> None:
    org = bought()
    begin(org, WantedChange(seats=2), at=T0 + days(3), change_id="chg_1")
    begin(org, WantedChange(seats=3), at=T0 + days(4), change_id="chg_2")

    scheduled = last_event_data(org, "BundleChangeScheduled")
    assert scheduled["scheduled_change"]["seats"] == 3
    assert scheduled["replaces"]["seats"] == 2
    assert contract_of(org).terms.scheduled_change == ScheduledChange(seats=3)


def test_one_body_raising_seats_and_dropping_an_add_on_records_both_in_one_outcome() -> None:
    org = bought(UpgradeRequest("monthly", 4, (AddOnRequest("storage-10gb", 2),)))
    at = T0 + days(15)

    begin(org, WantedChange(seats=5, add_ons=()), at=at)
    complete(org, "chg_1", at=at, number="SS-2026-000002")

    assert types(org)[-3:] == ["ChangeChargeStarted", "BundleChanged", "BundleChangeScheduled"]
    terms = contract_of(org).terms
    assert (terms.seats, terms.add_ons) == (5, (("storage-10gb", 2),))
    assert terms.scheduled_change == ScheduledChange(add_ons=())


def test_monthly_to_yearly_starts_a_new_period_now_and_later_periods_count_from_it() -> None:
    org = bought()  # monthly 4 seats, 30,000 a month
    at = T0 + days(10)

    total = begin(org, WantedChange(billing_period="yearly"), at=at)
    complete(org, "chg_1", at=at, number="SS-2026-000002")

    contract = contract_of(org)
    assert contract.terms.billing_period == "yearly"
    assert contract.terms.current_period_start == at
    assert contract.terms.current_period_end == add_calendar_months(at, 12)
    assert contract.anchor == at
    # 4 × 6,000 × 12 = 288,000 − unused floor(30,000 × 20 / 30) = 20,000; + 10 %
    assert total == 294_800
    renewal = renewal_charge(CATALOG.bundle, contract)
    assert renewal.period_end == add_calendar_months(at, 24)


def test_an_unused_period_worth_more_than_the_new_one_opens_the_credit_balance() -> None:
    org = bought(UpgradeRequest("monthly", 100))
    begin(org, WantedChange(billing_period="yearly", seats=1), at=T0)
    complete(org, "chg_1", at=T0, number="SS-2026-000002")

    changed = last_event_data(org, "BundleChanged")
    assert changed["total"] == 0
    assert changed["invoice"]["payment"] == {"status": "no_charge"}
    assert contract_of(org).terms.credit_balance == 750_000 - 72_000


def test_the_credit_balance_pays_for_a_change_first() -> None:
    org = bought(UpgradeRequest("monthly", 100))
    begin(org, WantedChange(billing_period="yearly", seats=1), at=T0)
    complete(org, "chg_1", at=T0, number="SS-2026-000002")
    at = T0 + days(100)

    begin(org, WantedChange(seats=2), at=at, change_id="chg_2")
    complete(org, "chg_2", at=at, number="SS-2026-000003")

    changed = last_event_data(org, "BundleChanged")
    assert changed["credit_applied"] == changed["subtotal"] > 0
    assert changed["total"] == 0
    assert contract_of(org).terms.credit_balance == 678_000 - changed["subtotal"]


def test_a_failed_charge_leaves_the_terms_as_they_were() -> None:
    org = bought()
    begin(org, WantedChange(seats=9), at=T0 + days(1))

    assert org.fail_change(change_id="chg_1", reason="card_declined", at=T0 + days(1))
    assert contract_of(org).terms.seats == 4
    assert contract_of(org).pending_change is None
    assert not org.fail_change(change_id="chg_1", reason="card_declined", at=T0 + days(1))


@pytest.mark.parametrize(
    ("prepare", "code"),
    [
        (lambda org: fail(org, "ren_1", MONTH_END), "payment_past_due"),
        (lambda org: begin(org, WantedChange(seats=5), at=T0 + days(1)), "change_in_progress"),
        (lambda org: org.begin_renewal(renewal_id="r", at=MONTH_END, catalog=CATALOG), None),
    ],
    ids=["past due", "a change being charged", "a renewal being charged"],
)
def test_a_change_waits_for_what_is_being_settled(prepare: Any, code: str | None) -> None:
    org = bought()
    prepare(org)
    at = MONTH_END + days(1) if code != "change_in_progress" else T0 + days(2)

    with pytest.raises(StateConflict) as refused:
        org.quote_change(WantedChange(seats=8), at=at, catalog=CATALOG)

    assert refused.value.code == (code or "renewal_in_progress")


def test_a_change_before_any_contract_is_refused() -> None:
    with pytest.raises(StateConflict) as refused:
        register().quote_change(WantedChange(seats=8), at=T0, catalog=CATALOG)

    assert refused.value.code == "no_active_contract"


def test_a_period_that_has_ended_renews_before_it_changes() -> None:
    org = bought()

    with pytest.raises(StateConflict) as refused:
        org.quote_change(WantedChange(seats=8), at=MONTH_END, catalog=CATALOG)

    assert refused.value.code == "renewal_in_progress"


def test_a_pending_change_holds_the_renewal_back() -> None:
    org = bought()
    begin(org, WantedChange(seats=5), at=MONTH_END - days(1))

    assert not renewal_due(org.facts, MONTH_END)


def test_expected_total_that_differs_is_quote_changed_with_the_fresh_quote() -> None:
    org = bought()

    with pytest.raises(StateConflict) as refused:
        begin(org, WantedChange(seats=6), at=T0 + days(10), expected_total=1)

    assert refused.value.code == "quote_changed"
    assert refused.value.details["quote"]["total"] == 11_000
    assert "ChangeChargeStarted" not in types(org)


def test_switching_to_yearly_while_set_to_cancel_is_refused() -> None:
    org = bought()
    org.cancel_contract(by=OWNER, at=T0 + days(1), catalog=CATALOG)

    with pytest.raises(StateConflict) as refused:
        begin(org, WantedChange(billing_period="yearly"), at=T0 + days(2))

    assert refused.value.code == "cancellation_scheduled"


def test_a_change_to_pay_with_no_card_on_file_is_refused() -> None:
    org = bought(payment={**PAYMENT, "payment_method": None})

    with pytest.raises(StateConflict) as refused:
        begin(org, WantedChange(seats=6), at=T0 + days(1))

    assert refused.value.code == "no_payment_method"


def test_only_those_with_rights_on_the_bundle_may_change_it() -> None:
    org = bought()

    with pytest.raises(NotAllowed):
        begin(org, WantedChange(seats=6), at=T0 + days(1), by="u-stranger")


def test_the_pending_change_survives_the_facts_json_form() -> None:
    org = bought()
    begin(org, WantedChange(seats=6), at=T0 + days(10))

    assert facts_from_dict(facts_to_dict(org.facts)) == org.facts
