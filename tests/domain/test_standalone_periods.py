"""A standalone service may hold several plan periods (SPEC §11, issue 11).

A later period *adds* to the service; the upgrade credits every period still
running on its date for its own unused days; one ``StandaloneContractTerminated``
per service records that service's credit and how it was split between the
upgrade's ``credit`` and its ``unapplied_credit`` — so the stream adds up.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.access_view import access_view
from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict
from domain.invoice import applied_service_credits
from domain.organization import Organization
from domain.quote import Credit, UpgradeRequest, service_credits
from tests.domain.builders import (
    CATALOG,
    CONTACT,
    PAYMENT,
    T0,
    Plan,
    begin_checkout,
    organization_with,
    record,
    yearly_request,
)

CRM_2026 = Plan("crm", super_admin="u-alice")  # 2026-03-06 .. 2027-03-06, 120,000
CRM_2027 = Plan(
    "crm", super_admin="u-alice", amount_paid=130_000, start=date(2027, 3, 6), end=date(2028, 3, 6)
)


def terminated_events(org: Organization) -> list[ev.StandaloneContractTerminated]:
    return [e for e in org.pending_events if isinstance(e, ev.StandaloneContractTerminated)]


def purchase(
    org: Organization, *, at: datetime = T0, request: UpgradeRequest | None = None
) -> None:
    begin_checkout(org, by="u-alice", at=at, request=request)
    org.complete_checkout(
        checkout_id="chk_0001",
        payment=PAYMENT,
        at=at,
        invoice_number=f"SS-{at.year}-000001",
        invoice_issued_at=at,
        catalog=CATALOG,
    )


# -- recording periods -------------------------------------------------------------


def test_a_renewal_recorded_before_the_upgrade_adds_a_period() -> None:
    org = organization_with(CRM_2026, CRM_2027)
    periods = org.facts.periods("crm")
    assert [(p.period_start, p.period_end, p.amount_paid) for p in periods] == [
        (date(2026, 3, 6), date(2027, 3, 6), 120_000),
        (date(2027, 3, 6), date(2028, 3, 6), 130_000),
    ]
    assert org.facts.purchased_services(T0.date()) == ("crm",)


def test_a_period_recorded_again_with_the_same_start_corrects_it() -> None:
    org = organization_with(CRM_2026, Plan("crm", super_admin="u-zed", amount_paid=100_000))
    (period,) = org.facts.periods("crm")
    assert period.amount_paid == 100_000
    assert org.facts.admins_of("crm").super_admin == "u-zed"  # type: ignore[union-attr]


def test_periods_are_kept_in_start_order_whatever_order_they_were_recorded_in() -> None:
    earlier = Plan("crm", super_admin="u-alice", start=date(2025, 3, 6), end=date(2026, 3, 6))
    desk = Plan("desk", super_admin="u-alice", start=date(2026, 11, 1), end=date(2026, 12, 1))
    org = organization_with(CRM_2027, desk, CRM_2026, earlier)
    assert [(p.service, p.period_start.year) for p in org.facts.subscriptions] == [
        ("crm", 2025),
        ("crm", 2026),
        ("crm", 2027),
        ("desk", 2026),
    ]


def test_an_ended_period_recorded_late_is_history_it_is_neither_in_p_nor_credited() -> None:
    old = Plan("desk", super_admin="u-alice", start=date(2025, 1, 1), end=date(2025, 2, 1))
    org = organization_with(CRM_2026, old)
    assert org.facts.purchased_services(T0.date()) == ("crm",)
    quote = org.quote(yearly_request(), at=T0, catalog=CATALOG)
    assert [c.service for c in quote.credits] == ["crm"]


def test_continuous_periods_keep_the_service_paid_across_the_renewal_date() -> None:
    org = organization_with(CRM_2026, CRM_2027)
    for moment in (
        datetime(2027, 3, 5, 23, tzinfo=T0.tzinfo),
        datetime(2027, 3, 6, tzinfo=T0.tzinfo),
    ):
        view = access_view(org.facts, CATALOG, moment)
        crm = next(s for s in view.services if s.code == "crm")
        assert (crm.edition, crm.contract) == ("paid", "standalone")
    after = access_view(org.facts, CATALOG, datetime(2028, 3, 6, tzinfo=T0.tzinfo))
    crm = next(s for s in after.services if s.code == "crm")
    assert crm.edition == "none"


# -- the upgrade's credit ----------------------------------------------------------------


def test_each_running_period_is_credited_for_its_own_unused_days() -> None:
    # On 2026-11-26: 100 of 365 days left of the running period, all 366 of the renewal.
    org = organization_with(CRM_2026, CRM_2027)
    quote = org.quote(yearly_request(), at=T0, catalog=CATALOG)
    assert [(c.remaining_days, c.total_days, c.amount) for c in quote.credits] == [
        (100, 365, 120_000 * 100 // 365),
        (366, 366, 130_000),
    ]
    assert quote.credit + quote.unapplied_credit == 32_876 + 130_000
    assert quote.to_dict()["credits"][1] == {
        "service": "crm",
        "amount_paid": 130_000,
        "remaining_days": 366,
        "total_days": 366,
        "amount": 130_000,
        "period_start": "2027-03-06",
        "period_end": "2028-03-06",
    }


def test_overlapping_periods_are_separate_payments_each_credited_on_its_own() -> None:
    # Five more seats bought for the rest of the term: a second period over the first.
    more_seats = Plan(
        "crm",
        super_admin="u-alice",
        seats=10,
        amount_paid=40_000,
        start=date(2026, 9, 6),
        end=date(2027, 3, 6),
    )
    org = organization_with(CRM_2026, more_seats)
    quote = org.quote(yearly_request(), at=T0, catalog=CATALOG)
    assert [c.amount for c in quote.credits] == [120_000 * 100 // 365, 40_000 * 100 // 181]
    running = org.facts.running_subscriptions(T0.date())
    assert max(p.seats for p in running) == 10


def test_one_terminated_event_per_service_records_its_periods_and_its_share() -> None:
    desk = Plan(
        "desk",
        super_admin="u-alice",
        billing_period="monthly",
        amount_paid=9_000,
        start=date(2026, 11, 10),
        end=date(2026, 12, 10),
    )
    org = organization_with(CRM_2026, CRM_2027, desk)
    purchase(org)
    crm, desk_event = terminated_events(org)
    assert (crm.service, crm.amount_credited, crm.remaining_days) == ("crm", 162_876, 466)
    assert [p["period_start"] for p in crm.periods or []] == ["2026-03-06", "2027-03-06"]
    assert (desk_event.service, desk_event.amount_credited) == ("desk", 9_000 * 14 // 30)
    purchased = next(e for e in org.pending_events if isinstance(e, ev.UpgradePurchased))
    assert sum(e.credit_applied or 0 for e in (crm, desk_event)) == purchased.credit
    assert sum(e.credit_to_balance or 0 for e in (crm, desk_event)) == purchased.unapplied_credit
    # Every period of the service is over: nothing is credited twice.
    assert all(p.terminated for p in org.facts.subscriptions)
    assert org.facts.purchased_services(T0.date()) == ()


def test_credit_above_the_subtotal_is_split_in_quote_order_and_the_rest_opens_the_balance() -> None:
    org = organization_with(CRM_2026, CRM_2027, Plan("desk", super_admin="u-alice"))
    monthly_one_seat = UpgradeRequest("monthly", 5)
    purchase(org, request=monthly_one_seat)
    crm, desk = terminated_events(org)
    purchased = next(e for e in org.pending_events if isinstance(e, ev.UpgradePurchased))
    assert purchased.credit == purchased.subtotal == 5 * 7_500
    assert (crm.credit_applied, crm.credit_to_balance) == (37_500, 162_876 - 37_500)
    assert (desk.credit_applied, desk.credit_to_balance) == (0, 32_876)


def test_the_invoice_credit_lines_are_the_services_applied_shares() -> None:
    org = organization_with(CRM_2026, CRM_2027)
    quote = org.quote(UpgradeRequest("monthly", 5), at=T0, catalog=CATALOG)
    lines = applied_service_credits(quote.credits, quote.credit, {"crm": "CRM"})
    shares = service_credits(quote.credits, quote.credit)
    assert [(line.service, line.amount) for line in lines] == [
        (s.service, s.applied) for s in shares
    ]
    # The stored JSON form of the credits gives the same lines.
    assert (
        applied_service_credits(quote.to_dict()["credits"], quote.credit, {"crm": "CRM"}) == lines
    )


# -- stored forms ------------------------------------------------------------------------


def test_the_facts_json_form_keeps_every_period_and_its_termination() -> None:
    org = organization_with(CRM_2026, CRM_2027)
    purchase(org)
    assert facts_from_dict(facts_to_dict(org.facts)) == org.facts


def test_a_snapshot_from_before_periods_reads_its_terminated_services() -> None:
    org = organization_with(CRM_2026, Plan("desk", super_admin="u-alice"))
    old_form: dict[str, Any] = facts_to_dict(org.facts)
    for period in old_form["subscriptions"]:
        del period["terminated"]
    old_form["terminated_services"] = ["crm"]
    facts: OrganizationFacts = facts_from_dict(old_form)
    assert [(p.service, p.terminated) for p in facts.subscriptions] == [
        ("crm", True),
        ("desk", False),
    ]


def test_a_v1_terminated_event_still_ends_the_service_with_its_split_unknown() -> None:
    state: dict[str, Any] = {
        "checkout_id": "chk_0001",
        "service": "crm",
        "remaining_days": 100,
        "amount_credited": 32_876,
    }
    ev.StandaloneContractTerminated.upcast_v1_v2(state)
    assert (state["credit_applied"], state["credit_to_balance"], state["periods"]) == (
        None,
        None,
        None,
    )


# -- the property: no yen made or lost ---------------------------------------------------

SERVICES = ("crm", "salesiq", "desk")


@st.composite
def periods_and_upgrade(draw: st.DrawFn) -> tuple[list[Plan], datetime, UpgradeRequest]:
    plans = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 700)))
        length = draw(st.integers(1, 400))
        plans.append(
            Plan(
                draw(st.sampled_from(SERVICES)),
                super_admin="u-alice",
                seats=draw(st.integers(1, 20)),
                amount_paid=draw(st.integers(0, 2_000_000)),
                start=start,
                end=start + timedelta(days=length),
            )
        )
    at = T0 + timedelta(days=draw(st.integers(0, 500)), seconds=draw(st.integers(0, 86_399)))
    period = draw(st.sampled_from(["monthly", "yearly"]))
    return plans, at, UpgradeRequest(period, draw(st.integers(20, 40)))


@settings(max_examples=150, deadline=None)
@given(periods_and_upgrade())
def test_the_terminated_credits_add_up_to_credit_plus_unapplied_credit(
    case: tuple[list[Plan], datetime, UpgradeRequest],
) -> None:
    plans, at, request = case
    org = organization_with()
    for plan in plans:
        record(org, plan)
    running = org.facts.running_subscriptions(at.date())
    quote = org.quote(request, at=at, catalog=CATALOG)
    org.begin_checkout(
        checkout_id="chk_0001",
        by="u-alice" if plans else "u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=at,
        catalog=CATALOG,
    )
    org.complete_checkout(
        checkout_id="chk_0001",
        payment=PAYMENT,
        at=at,
        invoice_number=f"SS-{at.year}-000001",
        invoice_issued_at=at,
        catalog=CATALOG,
    )
    terminated = terminated_events(org)

    # One event per service with a running period, each period credited once.
    assert [e.service for e in terminated] == list(dict.fromkeys(p.service for p in running))
    assert sum(len(e.periods or []) for e in terminated) == len(running) == len(quote.credits)
    for e in terminated:
        assert e.credit_applied is not None
        assert e.credit_to_balance is not None
        assert e.credit_applied >= 0
        assert e.credit_to_balance >= 0
        assert e.credit_applied + e.credit_to_balance == e.amount_credited
        assert e.amount_credited == sum(p["amount"] for p in e.periods or [])
    assert sum(e.credit_applied or 0 for e in terminated) == quote.credit
    assert sum(e.credit_to_balance or 0 for e in terminated) == quote.unapplied_credit
    assert sum(e.amount_credited for e in terminated) == quote.credit + quote.unapplied_credit
    assert quote.credit + quote.unapplied_credit == sum(c.amount for c in quote.credits)
    # No period is credited more than was paid for it.
    for credit in quote.credits:
        assert 0 <= credit.amount <= credit.amount_paid
    # The invoice's credit lines are the applied shares, and sum to the credit.
    lines = applied_service_credits(quote.credits, quote.credit, {})
    assert sum(line.amount for line in lines) == quote.credit


@given(
    st.lists(
        st.builds(
            Credit,
            service=st.sampled_from(SERVICES),
            amount_paid=st.just(0),
            remaining_days=st.integers(0, 400),
            total_days=st.just(400),
            amount=st.integers(0, 1_000_000),
        ),
        max_size=8,
    ),
    st.integers(0, 10_000_000),
)
def test_service_shares_split_any_applied_amount_without_making_or_losing_a_yen(
    credits: list[Credit], subtotal: int
) -> None:
    applied = min(sum(c.amount for c in credits), subtotal)
    shares = service_credits(credits, applied)
    assert sum(s.applied for s in shares) == applied
    assert sum(s.applied + s.to_balance for s in shares) == sum(c.amount for c in credits)
    assert [s.service for s in shares] == list(dict.fromkeys(c.service for c in credits))
