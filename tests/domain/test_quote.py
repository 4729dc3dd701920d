"""Upgrade pricing (SPEC §5): worked examples and arithmetic properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequest
from domain.facts import StandaloneSubscription
from domain.quote import (
    AddOnRequest,
    UpgradeRequest,
    add_calendar_months,
    compute_quote,
    credit_for,
)
from tests.domain.builders import CATALOG, T0, Plan, organization_with

BUNDLE = CATALOG.bundle


def subscription(
    service: str = "crm",
    *,
    seats: int = 5,
    amount_paid: int = 120_000,
    start: date = date(2026, 3, 6),
    end: date = date(2027, 3, 6),
    billing_period: str = "yearly",
) -> StandaloneSubscription:
    return StandaloneSubscription(service, seats, billing_period, amount_paid, start, end)


def request(period: str = "yearly", seats: int = 10, *add_ons: tuple[str, int]) -> UpgradeRequest:
    return UpgradeRequest(period, seats, tuple(AddOnRequest(c, q) for c, q in add_ons))


# -- the SPEC §10 example, exactly ---------------------------------------------------


def test_the_spec_example_is_priced_exactly() -> None:
    # crm: paid 120,000 for 2026-03-06..2027-03-06 (365 days); 100 days remain on 2026-11-26.
    org = organization_with(Plan("crm", super_admin="u-alice"))
    quote = org.quote(request("yearly", 10, ("storage-10gb", 2)), at=T0, catalog=CATALOG)

    assert quote.to_dict() == {
        "currency": "JPY",
        "billing_period": "yearly",
        "seats": 10,
        "lines": [
            {
                "kind": "bundle",
                "code": "crmplus",
                "quantity": 10,
                "unit_price": 6000,
                "months": 12,
                "amount": 720000,
            },
            {
                "kind": "add_on",
                "code": "storage-10gb",
                "quantity": 2,
                "unit_price": 1000,
                "months": 12,
                "amount": 24000,
            },
        ],
        "subtotal": 744000,
        "credits": [
            {
                "service": "crm",
                "amount_paid": 120000,
                "remaining_days": 100,
                "total_days": 365,
                "amount": 32876,
                "period_start": "2026-03-06",
                "period_end": "2027-03-06",
            }
        ],
        "credit": 32876,
        "unapplied_credit": 0,
        "tax": 71112,
        "total": 782236,
        "contract_start": "2026-11-26T09:00:00+00:00",
        "contract_end": "2027-11-26T09:00:00+00:00",
    }


# -- calendar arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (datetime(2027, 1, 31, 9, tzinfo=UTC), 1, datetime(2027, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, tzinfo=UTC), 1, datetime(2028, 2, 29, 9, tzinfo=UTC)),
        (datetime(2027, 3, 31, 9, tzinfo=UTC), 1, datetime(2027, 4, 30, 9, tzinfo=UTC)),
        (datetime(2026, 12, 31, 9, tzinfo=UTC), 1, datetime(2027, 1, 31, 9, tzinfo=UTC)),
        (datetime(2028, 2, 29, 9, tzinfo=UTC), 12, datetime(2029, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 2, 29, 9, tzinfo=UTC), 1, datetime(2028, 3, 29, 9, tzinfo=UTC)),
        (datetime(2026, 11, 26, 9, tzinfo=UTC), 12, datetime(2027, 11, 26, 9, tzinfo=UTC)),
    ],
    ids=[
        "Jan 31 + 1 month is Feb 28",
        "Jan 31 + 1 month is Feb 29 in a leap year",
        "Mar 31 + 1 month is Apr 30",
        "Dec 31 + 1 month crosses the year",
        "Feb 29 + 1 year is Feb 28",
        "Feb 29 + 1 month is Mar 29",
        "the spec's yearly contract",
    ],
)
def test_a_contract_ends_one_calendar_month_or_year_later_clamping_the_day(
    start: datetime, months: int, end: datetime
) -> None:
    assert add_calendar_months(start, months) == end


def test_a_monthly_contract_started_on_jan_31_ends_on_the_last_day_of_february() -> None:
    quote = compute_quote(
        BUNDLE, request("monthly", 1), [], datetime(2027, 1, 31, 23, 30, tzinfo=UTC)
    )
    assert quote.contract_end == datetime(2027, 2, 28, 23, 30, tzinfo=UTC)


def test_a_leap_day_upgrade_credits_a_366_day_plan_and_ends_the_contract_on_feb_28() -> None:
    plan_2028 = subscription(amount_paid=366_000, start=date(2028, 1, 1), end=date(2029, 1, 1))
    upgrade_at = datetime(2028, 2, 29, 10, tzinfo=UTC)

    quote = compute_quote(BUNDLE, request("yearly", 10), [plan_2028], upgrade_at)

    (credit,) = quote.credits
    assert (credit.remaining_days, credit.total_days) == (307, 366)
    assert credit.amount == 307_000
    assert quote.contract_end == datetime(2029, 2, 28, 10, tzinfo=UTC)


# -- credits ---------------------------------------------------------------------------------


def test_credit_above_the_subtotal_is_capped_and_the_rest_is_unapplied() -> None:
    rich_plan = subscription(seats=1, amount_paid=1_000_000)  # 100/365 left: 273,972
    quote = compute_quote(BUNDLE, request("monthly", 1), [rich_plan], T0)

    assert quote.subtotal == 7_500
    assert quote.credits[0].amount == 273_972
    assert quote.credit == 7_500
    assert quote.unapplied_credit == 266_472
    assert quote.tax == 0
    assert quote.total == 0


def test_credits_of_several_plans_add_up() -> None:
    crm = subscription()
    desk = subscription("desk", amount_paid=9_000, start=date(2026, 11, 1), end=date(2026, 12, 1))
    quote = compute_quote(BUNDLE, request("yearly", 10), [crm, desk], T0)
    assert [(c.service, c.remaining_days, c.total_days, c.amount) for c in quote.credits] == [
        ("crm", 100, 365, 32_876),
        ("desk", 5, 30, 1_500),
    ]
    assert quote.credit == 34_376


def test_a_plan_ending_on_the_upgrade_date_gives_no_credit() -> None:
    ends_today = subscription(start=date(2025, 11, 26), end=T0.date())
    assert credit_for(ends_today, T0.date()).remaining_days == 0
    assert credit_for(ends_today, T0.date()).amount == 0
    # …and it is no longer running, so the organization's quote does not list it.
    org = organization_with(Plan("crm", super_admin="u-a", start=date(2025, 11, 26), end=T0.date()))
    quote = org.quote(request("yearly", 10), at=T0, catalog=CATALOG)
    assert quote.credits == ()
    assert quote.credit == 0


def test_a_plan_paid_for_a_period_not_yet_started_is_credited_at_most_in_full() -> None:
    future = subscription(amount_paid=12_000, start=date(2027, 1, 1), end=date(2028, 1, 1))
    credit = credit_for(future, T0.date())
    assert (credit.remaining_days, credit.total_days, credit.amount) == (365, 365, 12_000)


def test_credit_rounds_down_to_the_minor_unit() -> None:
    plan = subscription(amount_paid=100, start=date(2026, 11, 1), end=date(2026, 11, 30))
    credit = credit_for(plan, date(2026, 11, 28))  # 100 × 2 / 29 = 6.89…
    assert credit.amount == 6


# -- lines -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "unit_price", "months", "amount"),
    [("monthly", 7_500, 1, 75_000), ("yearly", 6_000, 12, 720_000)],
)
def test_the_bundle_line_is_seats_times_price_times_months(
    period: str, unit_price: int, months: int, amount: int
) -> None:
    quote = compute_quote(BUNDLE, request(period, 10), [], T0)
    (line,) = quote.lines
    assert (line.kind, line.code, line.quantity) == ("bundle", "crmplus", 10)
    assert (line.unit_price, line.months, line.amount) == (unit_price, months, amount)


def test_monthly_and_yearly_quotes_differ_only_by_price_and_months() -> None:
    monthly = compute_quote(BUNDLE, request("monthly", 3), [], T0)
    yearly = compute_quote(BUNDLE, request("yearly", 3), [], T0)
    assert (monthly.subtotal, monthly.tax, monthly.total) == (22_500, 2_250, 24_750)
    assert (yearly.subtotal, yearly.tax, yearly.total) == (216_000, 21_600, 237_600)
    assert monthly.contract_end == datetime(2026, 12, 26, 9, tzinfo=UTC)
    assert yearly.contract_end == datetime(2027, 11, 26, 9, tzinfo=UTC)


def test_each_add_on_gets_its_own_line_in_the_requested_order() -> None:
    quote = compute_quote(
        BUNDLE,
        request("monthly", 2, ("advanced-analytics", 3), ("extra-portal", 1), ("storage-10gb", 4)),
        [],
        T0,
    )
    assert [
        (ln.kind, ln.code, ln.quantity, ln.unit_price, ln.months, ln.amount) for ln in quote.lines
    ] == [
        ("bundle", "crmplus", 2, 7_500, 1, 15_000),
        ("add_on", "advanced-analytics", 3, 1_500, 1, 4_500),
        ("add_on", "extra-portal", 1, 3_000, 1, 3_000),
        ("add_on", "storage-10gb", 4, 1_000, 1, 4_000),
    ]
    assert quote.subtotal == 26_500
    assert quote.tax == 2_650  # once, on the whole, never per line


def test_tax_is_applied_once_to_the_amount_after_credits_rounded_down() -> None:
    plan = subscription(seats=1, amount_paid=7, start=date(2026, 11, 1), end=date(2026, 12, 1))
    quote = compute_quote(BUNDLE, request("monthly", 1), [plan], T0)  # credit 7 × 5 / 30 = 1
    assert quote.credit == 1
    assert quote.tax == 749  # floor(7,499 × 10 / 100)
    assert quote.total == 8_248


# -- refusals ----------------------------------------------------------------------------------


def test_fewer_seats_than_the_purchased_plans_license_are_refused() -> None:
    plans = [subscription(seats=5), subscription("desk", seats=8)]
    with pytest.raises(InvalidRequest) as refused:
        compute_quote(BUNDLE, request("yearly", 7), plans, T0)
    assert refused.value.code == "seats_below_current_licenses"
    assert refused.value.details == {
        "seats": 7,
        "minimum_seats": 8,
        "licenses": {"crm": 5, "desk": 8},
    }
    assert compute_quote(BUNDLE, request("yearly", 8), plans, T0).seats == 8


def test_an_ended_plan_does_not_raise_the_minimum_seats() -> None:
    org = organization_with(
        Plan("crm", super_admin="u-a", seats=50, start=date(2025, 1, 1), end=date(2026, 1, 1))
    )
    assert org.quote(request("yearly", 1), at=T0, catalog=CATALOG).seats == 1


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (request("yearly", 0), "seats"),
        (request("yearly", 10_001), "seats"),
        (request("weekly", 10), "billing_period"),
        (request("yearly", 10, ("mailbox", 1)), "add_ons.0.code"),
        (request("yearly", 10, ("storage-10gb", 1), ("storage-10gb", 2)), "add_ons.1.code"),
        (request("yearly", 10, ("storage-10gb", 0)), "add_ons.0.quantity"),
        (request("yearly", 10, ("storage-10gb", 1_001)), "add_ons.0.quantity"),
    ],
    ids=[
        "no seats",
        "over 10,000 seats",
        "unknown billing period",
        "unknown add-on",
        "add-on listed twice",
        "add-on quantity zero",
        "add-on quantity too large",
    ],
)
def test_a_request_no_price_can_be_given_for_is_refused_naming_the_field(
    bad: UpgradeRequest, field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        compute_quote(BUNDLE, bad, [], T0)
    assert refused.value.code == "validation_failed"
    assert field in refused.value.details["fields"]


@pytest.mark.parametrize("seats", [1, 10_000])
def test_the_seat_range_includes_its_bounds(seats: int) -> None:
    assert compute_quote(BUNDLE, request("monthly", seats), [], T0).seats == seats


# -- properties ----------------------------------------------------------------------------------

ADD_ON_CODES = [a.code for a in BUNDLE.add_ons]


@st.composite
def plans(draw: st.DrawFn) -> StandaloneSubscription:
    start = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 6, 1)))
    length = draw(st.integers(min_value=1, max_value=800))
    return subscription(
        draw(st.sampled_from(["crm", "salesiq", "desk", "projects"])),
        seats=draw(st.integers(min_value=1, max_value=50)),
        amount_paid=draw(st.integers(min_value=0, max_value=50_000_000)),
        start=start,
        end=start + timedelta(days=length),
    )


@st.composite
def upgrade_cases(
    draw: st.DrawFn,
) -> tuple[UpgradeRequest, list[StandaloneSubscription], datetime]:
    running = draw(st.lists(plans(), max_size=4, unique_by=lambda s: s.service))
    minimum = max((s.seats for s in running), default=1)
    codes = draw(st.lists(st.sampled_from(ADD_ON_CODES), unique=True))
    add_ons = tuple(
        AddOnRequest(code, draw(st.integers(min_value=1, max_value=1_000))) for code in codes
    )
    upgrade_request = UpgradeRequest(
        draw(st.sampled_from(["monthly", "yearly"])),
        draw(st.integers(min_value=minimum, max_value=10_000)),
        add_ons,
    )
    moment = draw(
        st.datetimes(
            min_value=datetime(2025, 1, 1),
            max_value=datetime(2028, 12, 31),
            timezones=st.just(UTC),
        )
    )
    return upgrade_request, running, moment


@settings(max_examples=200, deadline=None)
@given(upgrade_cases())
def test_every_quote_obeys_the_arithmetic_of_the_spec(
    case: tuple[UpgradeRequest, list[StandaloneSubscription], datetime],
) -> None:
    upgrade_request, running, moment = case
    quote = compute_quote(BUNDLE, upgrade_request, running, moment)

    amounts = [quote.subtotal, quote.credit, quote.unapplied_credit, quote.tax, quote.total]
    amounts += [line.amount for line in quote.lines] + [c.amount for c in quote.credits]
    assert all(type(amount) is int for amount in amounts)
    assert quote.total >= 0
    assert 0 <= quote.credit <= quote.subtotal
    assert quote.credit + quote.unapplied_credit == sum(c.amount for c in quote.credits)
    assert quote.subtotal == sum(line.amount for line in quote.lines)
    assert quote.tax == (quote.subtotal - quote.credit) * 10 // 100
    assert quote.total == quote.subtotal - quote.credit + quote.tax
    for credit in quote.credits:
        assert 0 <= credit.amount <= credit.amount_paid
        assert 0 <= credit.remaining_days <= credit.total_days


@settings(max_examples=200, deadline=None)
@given(upgrade_cases(), st.integers(min_value=1, max_value=500))
def test_the_total_never_falls_when_seats_are_added(
    case: tuple[UpgradeRequest, list[StandaloneSubscription], datetime], more: int
) -> None:
    upgrade_request, running, moment = case
    bigger = UpgradeRequest(
        upgrade_request.billing_period,
        min(upgrade_request.seats + more, 10_000),
        upgrade_request.add_ons,
    )
    smaller_total = compute_quote(BUNDLE, upgrade_request, running, moment).total
    bigger_total = compute_quote(BUNDLE, bigger, running, moment).total
    assert bigger_total >= smaller_total
