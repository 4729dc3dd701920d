"""Changing the plan mid-term (SPEC §11): worked examples and money properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalog import BILLING_PERIODS, MONTHS_PER_PERIOD
from domain.contract import renewal_terms
from domain.contract_change import (
    AT_RENEWAL,
    NOW,
    ChangeQuote,
    PlanTerms,
    WantedChange,
    price_change,
    wanted_terms,
)
from domain.errors import InvalidRequest
from domain.facts import ContractTerms, PaymentMethod, ScheduledChange
from domain.invoice import (
    CREDIT_FROM_BALANCE,
    CREDIT_FROM_UNUSED_PERIOD,
    InvoiceIssuer,
    InvoicePayment,
    build_invoice,
)
from domain.quote import MAX_SEATS, AddOnRequest, add_calendar_months
from tests.domain.builders import CATALOG, CONTACT, T0

BUNDLE = CATALOG.bundle
YEAR_END = datetime(2027, 11, 26, 9, 0, tzinfo=UTC)  # T0 + 1 year: 365 days
MONTH_END = datetime(2026, 12, 26, 9, 0, tzinfo=UTC)  # T0 + 1 month: 30 days


def yearly(seats: int = 10, *add_ons: tuple[str, int]) -> PlanTerms:
    return PlanTerms("yearly", seats, tuple(add_ons))


def monthly(seats: int = 10, *add_ons: tuple[str, int]) -> PlanTerms:
    return PlanTerms("monthly", seats, tuple(add_ons))


def wanted(
    seats: int | None = None,
    add_ons: list[tuple[str, int]] | None = None,
    billing_period: str | None = None,
) -> WantedChange:
    return WantedChange(
        seats=seats,
        add_ons=None if add_ons is None else tuple(AddOnRequest(c, q) for c, q in add_ons),
        billing_period=billing_period,
    )


def contract_terms(
    terms: PlanTerms, *, scheduled: ScheduledChange | None = None, balance: int = 0
) -> ContractTerms:
    """A contract started at T0 with ``terms`` for its first period."""
    return ContractTerms(
        billing_period=terms.billing_period,
        seats=terms.seats,
        add_ons=terms.add_ons,
        current_period_start=T0,
        current_period_end=add_calendar_months(T0, MONTHS_PER_PERIOD[terms.billing_period]),
        payment_method=PaymentMethod("visa", "4242", "pm_1", "sandbox"),
        scheduled_change=scheduled,
        credit_balance=balance,
    )


def change(
    terms: PlanTerms,
    want: WantedChange,
    *,
    at: datetime,
    scheduled: ScheduledChange | None = None,
    balance: int = 0,
) -> ChangeQuote:
    return price_change(
        BUNDLE, contract_terms(terms, scheduled=scheduled, balance=balance), want, at
    )


def renewal_after(quote: ChangeQuote) -> PlanTerms:
    """What the next renewal buys after the change (the renewal's own rule)."""
    renewal = renewal_terms(contract_terms(quote.terms_after, scheduled=quote.scheduled_change))
    return PlanTerms(renewal.billing_period, renewal.seats, renewal.add_ons)


def invoice_of(quote: ChangeQuote) -> int:
    """The total of the invoice the charge would issue (built by the one builder)."""
    invoice = build_invoice(
        number="SS-2027-000001",
        issued_at=quote.at,
        kind="change",
        charge_key="chg-1",
        currency=quote.currency,
        issuer=InvoiceIssuer.from_catalog(CATALOG.issuer),
        billing_contact=CONTACT,
        lines=quote.invoice_lines(BUNDLE),
        credits=quote.invoice_credits(BUNDLE),
        payment=InvoicePayment.no_charge()
        if quote.total == 0
        else InvoicePayment.card("visa", "4242"),
        period_start=quote.period_start,
        period_end=quote.period_end,
    )
    assert invoice.subtotal == quote.subtotal
    assert invoice.credit == quote.credit
    assert invoice.tax == quote.tax
    return invoice.total


# -- increases: at once, pro rata -----------------------------------------------------


def test_more_seats_are_charged_pro_rata_for_the_days_left_of_the_period() -> None:
    # 100 days into a 365-day yearly period: 265 days remain.
    quote = change(yearly(10), wanted(seats=15), at=T0 + timedelta(days=100))

    assert [line.to_dict() for line in quote.lines] == [
        {
            "kind": "bundle",
            "code": "crmplus",
            "quantity": 5,
            "unit_price": 6000,
            "months": None,
            "days": 265,
            "delta_per_period": 360_000,  # 5 × 6,000 × 12
            "period_days": 365,
            "amount": 261_369,  # floor(360,000 × 265 / 365) = floor(261,369.86)
        }
    ]
    assert (quote.subtotal, quote.credit, quote.tax, quote.total) == (261_369, 0, 26_136, 287_505)
    assert quote.terms_after == yearly(15)
    assert quote.scheduled_change is None
    assert quote.changes_now
    assert not quote.schedule_changes
    assert (quote.period_start, quote.period_end) == (T0 + timedelta(days=100), YEAR_END)
    assert invoice_of(quote) == 287_505


def test_a_new_add_on_and_a_larger_quantity_are_each_charged_on_their_own_line() -> None:
    # monthly, 10 of 30 days gone: 20 remain.
    quote = change(
        monthly(10, ("storage-10gb", 1)),
        wanted(add_ons=[("storage-10gb", 3), ("extra-portal", 1)]),
        at=T0 + timedelta(days=10),
    )

    assert [
        (line.code, line.quantity, line.delta_per_period, line.amount) for line in quote.lines
    ] == [
        ("storage-10gb", 2, 2_000, 1_333),  # floor(2,000 × 20 / 30)
        ("extra-portal", 1, 3_000, 2_000),  # floor(3,000 × 20 / 30)
    ]
    assert quote.subtotal == 3_333
    assert quote.tax == 333
    assert quote.total == 3_666
    assert quote.terms_after.add_ons == (("storage-10gb", 3), ("extra-portal", 1))


def test_the_credit_balance_is_used_before_tax() -> None:
    quote = change(yearly(10), wanted(seats=15), at=T0 + timedelta(days=100), balance=100_000)

    assert quote.credit_balance_applied == 100_000
    assert quote.credit_balance_after == 0
    assert quote.tax == 16_136  # floor((261,369 − 100,000) × 10 %)
    assert quote.total == 177_505
    credits = quote.invoice_credits(BUNDLE)
    assert [(c.source, c.amount) for c in credits] == [(CREDIT_FROM_BALANCE, 100_000)]
    assert invoice_of(quote) == 177_505


def test_a_balance_larger_than_the_charge_leaves_a_total_of_zero_and_keeps_the_rest() -> None:
    quote = change(yearly(10), wanted(seats=11), at=T0 + timedelta(days=100), balance=1_000_000)

    assert quote.subtotal == 52_273  # floor(72,000 × 265 / 365)
    assert (quote.credit, quote.tax, quote.total) == (52_273, 0, 0)
    assert quote.credit_balance_after == 1_000_000 - 52_273
    assert invoice_of(quote) == 0  # a total of 0 still issues an invoice ("no charge")


def test_an_increase_on_the_periods_last_day_takes_effect_at_once_for_nothing() -> None:
    last_day = YEAR_END - timedelta(hours=1)  # 0 whole days remain (§5's day counting)

    quote = change(yearly(10), wanted(seats=12), at=last_day)

    assert quote.changes_now
    assert [(line.days, line.amount) for line in quote.lines] == [(0, 0)]
    assert quote.total == 0


# -- decreases: at the renewal, no refund ---------------------------------------------


def test_fewer_seats_wait_for_the_renewal_and_charge_nothing() -> None:
    quote = change(yearly(10, ("storage-10gb", 2)), wanted(seats=4), at=T0 + timedelta(days=100))

    assert not quote.changes_now
    assert quote.schedule_changes
    assert quote.lines == ()
    assert (quote.subtotal, quote.total, quote.credit_balance_after) == (0, 0, 0)
    assert quote.terms_after == quote.terms_before
    assert quote.scheduled_change == ScheduledChange(seats=4)
    assert [c.to_dict() for c in quote.changes] == [
        {"kind": "bundle", "code": "crmplus", "from": 10, "to": 4, "takes_effect": AT_RENEWAL}
    ]


def test_a_removed_add_on_is_scheduled_as_the_whole_next_add_on_list() -> None:
    quote = change(
        yearly(10, ("storage-10gb", 2), ("extra-portal", 1)),
        wanted(add_ons=[("extra-portal", 1)]),
        at=T0 + timedelta(days=1),
    )

    assert quote.scheduled_change == ScheduledChange(add_ons=(("extra-portal", 1),))
    assert quote.scheduled_change is not None
    assert quote.scheduled_change.to_dict() == {
        "seats": None,
        "add_ons": [{"code": "extra-portal", "quantity": 1}],
        "billing_period": None,
    }


def test_one_change_can_raise_one_line_now_and_lower_another_at_the_renewal() -> None:
    quote = change(
        monthly(10, ("storage-10gb", 2)),
        wanted(seats=12, add_ons=[]),
        at=T0 + timedelta(days=15),
    )

    assert quote.terms_after == monthly(12, ("storage-10gb", 2))
    assert quote.scheduled_change == ScheduledChange(add_ons=())
    assert [(c.code, c.takes_effect) for c in quote.changes] == [
        ("crmplus", NOW),
        ("storage-10gb", AT_RENEWAL),
    ]
    assert [line.amount for line in quote.lines] == [7_500]  # floor(15,000 × 15 / 30)
    assert renewal_after(quote) == monthly(12)


def test_yearly_to_monthly_waits_for_the_renewal() -> None:
    quote = change(yearly(10), wanted(billing_period="monthly"), at=T0 + timedelta(days=30))

    assert not quote.changes_now
    assert quote.scheduled_change == ScheduledChange(billing_period="monthly")
    assert quote.total == 0


# -- a later change replaces the scheduled one ----------------------------------------


def test_a_later_decrease_replaces_the_scheduled_one() -> None:
    quote = change(
        yearly(10), wanted(seats=7), at=T0 + timedelta(days=40), scheduled=ScheduledChange(seats=5)
    )

    assert quote.scheduled_before == ScheduledChange(seats=5)
    assert quote.scheduled_change == ScheduledChange(seats=7)


def test_asking_for_the_current_seats_withdraws_a_scheduled_decrease() -> None:
    quote = change(
        yearly(10), wanted(seats=10), at=T0 + timedelta(days=40), scheduled=ScheduledChange(seats=5)
    )

    assert quote.scheduled_change is None
    assert quote.schedule_changes
    assert not quote.changes_now


def test_an_increase_on_one_line_keeps_what_is_scheduled_for_the_others() -> None:
    scheduled = ScheduledChange(seats=5)

    quote = change(
        yearly(10),
        wanted(add_ons=[("storage-10gb", 1)]),
        at=T0 + timedelta(days=40),
        scheduled=scheduled,
    )

    assert quote.terms_after == yearly(10, ("storage-10gb", 1))
    assert quote.scheduled_change == scheduled
    assert quote.changes_now
    assert not quote.schedule_changes


def test_more_seats_than_now_replace_a_scheduled_decrease_and_are_charged() -> None:
    quote = change(
        yearly(10),
        wanted(seats=12),
        at=T0 + timedelta(days=100),
        scheduled=ScheduledChange(seats=5),
    )

    assert quote.terms_after == yearly(12)
    assert quote.scheduled_change is None
    assert [line.quantity for line in quote.lines] == [2]


# -- monthly → yearly: a new period now, the old one's rest credited --------------------


def test_monthly_to_yearly_starts_a_yearly_period_now_and_credits_the_unused_days() -> None:
    at = T0 + timedelta(days=10)  # 20 of the month's 30 days remain

    quote = change(monthly(10), wanted(billing_period="yearly"), at=at)

    assert quote.new_period
    assert (quote.period_start, quote.period_end) == (at, add_calendar_months(at, 12))
    assert quote.terms_after == yearly(10)
    assert quote.unused_period_credit is not None
    assert quote.unused_period_credit.to_dict() == {
        "billing_period": "monthly",
        "period_amount": 75_000,  # 10 × 7,500
        "remaining_days": 20,
        "total_days": 30,
        "amount": 50_000,  # floor(75,000 × 20 / 30)
    }
    assert [line.amount for line in quote.lines] == [720_000]
    assert (quote.subtotal, quote.credit, quote.tax, quote.total) == (
        720_000,
        50_000,
        67_000,
        737_000,
    )
    assert [c.source for c in quote.invoice_credits(BUNDLE)] == [CREDIT_FROM_UNUSED_PERIOD]
    assert invoice_of(quote) == 737_000


def test_the_switch_to_yearly_takes_every_wanted_and_scheduled_term_with_it() -> None:
    quote = change(
        monthly(10, ("storage-10gb", 2)),
        wanted(billing_period="yearly", add_ons=[("extra-portal", 1)]),
        at=T0 + timedelta(days=10),
        scheduled=ScheduledChange(seats=5),
    )

    assert quote.terms_after == yearly(5, ("extra-portal", 1))
    assert quote.scheduled_change is None
    assert all(c.takes_effect == NOW for c in quote.changes)
    assert quote.subtotal == 5 * 6_000 * 12 + 3_000 * 12


def test_an_unused_period_worth_more_than_the_new_one_goes_to_the_credit_balance() -> None:
    # 100 seats monthly, switched on the period's first day: 750,000 unused;
    # a yearly period of 1 seat costs 72,000.
    quote = change(monthly(100), wanted(billing_period="yearly", seats=1), at=T0, balance=10)

    assert quote.unused_period_credit is not None
    assert quote.unused_period_credit.amount == 750_000
    assert quote.period_credit_applied == 72_000
    assert quote.credited_to_balance == 678_000
    assert quote.credit_balance_applied == 0
    assert quote.credit_balance_after == 678_010
    assert quote.total == 0


# -- refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "want", "scheduled"),
    [
        (yearly(10), wanted(), None),
        (yearly(10), wanted(seats=10, billing_period="yearly"), None),
        (
            yearly(10, ("storage-10gb", 1), ("extra-portal", 2)),
            wanted(add_ons=[("extra-portal", 2), ("storage-10gb", 1)]),
            None,
        ),
        (yearly(10), wanted(seats=5), ScheduledChange(seats=5)),
        (yearly(10), wanted(billing_period="monthly"), ScheduledChange(billing_period="monthly")),
    ],
    ids=["empty", "same terms", "add-ons reordered", "same decrease", "same period switch"],
)
def test_a_change_that_alters_nothing_is_no_change(
    terms: PlanTerms, want: WantedChange, scheduled: ScheduledChange | None
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        change(terms, want, at=T0 + timedelta(days=3), scheduled=scheduled)

    assert refused.value.code == "no_change"


@pytest.mark.parametrize(
    ("want", "field"),
    [
        (wanted(seats=0), "seats"),
        (wanted(seats=MAX_SEATS + 1), "seats"),
        (wanted(billing_period="weekly"), "billing_period"),
        (wanted(add_ons=[("no-such-add-on", 1)]), "add_ons.0.code"),
        (wanted(add_ons=[("storage-10gb", 1), ("storage-10gb", 2)]), "add_ons.1.code"),
        (wanted(add_ons=[("storage-10gb", 0)]), "add_ons.0.quantity"),
    ],
)
def test_terms_out_of_range_are_a_validation_error(want: WantedChange, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        change(yearly(10), want, at=T0 + timedelta(days=3))

    assert refused.value.code == "validation_failed"
    assert field in refused.value.details["fields"]


def test_ten_thousand_seats_are_allowed() -> None:
    quote = change(yearly(10), wanted(seats=MAX_SEATS), at=T0 + timedelta(days=3))

    assert quote.terms_after.seats == MAX_SEATS


def test_the_quote_reads_back_from_its_recorded_form() -> None:
    quote = change(
        monthly(10, ("storage-10gb", 2)),
        wanted(billing_period="yearly", seats=12),
        at=T0 + timedelta(days=10),
        balance=5,
    )

    assert ChangeQuote.from_dict(quote.to_dict()) == quote


# -- properties -------------------------------------------------------------------

ADD_ON_CODES = tuple(a.code for a in BUNDLE.add_ons)


@st.composite
def add_on_lists(draw: st.DrawFn) -> tuple[tuple[str, int], ...]:
    codes = draw(st.lists(st.sampled_from(ADD_ON_CODES), unique=True))
    return tuple((code, draw(st.integers(1, 1_000))) for code in codes)


@st.composite
def plan_terms(draw: st.DrawFn) -> PlanTerms:
    return PlanTerms(
        draw(st.sampled_from(BILLING_PERIODS)),
        draw(st.integers(1, MAX_SEATS)),
        draw(add_on_lists()),
    )


@st.composite
def scheduled_changes(draw: st.DrawFn, terms: PlanTerms) -> ScheduledChange | None:
    shorter = "monthly" if terms.billing_period == "yearly" else None
    change = ScheduledChange(
        billing_period=draw(st.sampled_from([None, shorter])),
        seats=draw(st.none() | st.integers(1, terms.seats)),
        add_ons=draw(st.none() | add_on_lists()),
    )
    return None if change == ScheduledChange() else change


@st.composite
def wanted_changes(draw: st.DrawFn) -> WantedChange:
    add_ons = draw(st.none() | add_on_lists())
    return WantedChange(
        seats=draw(st.none() | st.integers(1, MAX_SEATS)),
        add_ons=None if add_ons is None else tuple(AddOnRequest(c, q) for c, q in add_ons),
        billing_period=draw(st.none() | st.sampled_from(BILLING_PERIODS)),
    )


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int]:
    terms = draw(plan_terms())
    end = add_calendar_months(T0, MONTHS_PER_PERIOD[terms.billing_period])
    seconds = int((end - T0).total_seconds())
    at = T0 + timedelta(seconds=draw(st.integers(0, seconds - 1)))
    balance = draw(st.integers(0, 20_000_000))
    return terms, draw(scheduled_changes(terms)), draw(wanted_changes()), at, balance


def priced(
    situation: tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int],
) -> ChangeQuote | None:
    terms, scheduled, want, at, balance = situation
    try:
        return change(terms, want, at=at, scheduled=scheduled, balance=balance)
    except InvalidRequest as refused:
        if refused.code != "no_change":
            raise
        return None


@settings(max_examples=150, deadline=None)
@given(situations())
def test_money_is_neither_created_nor_lost(
    situation: tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int],
) -> None:
    quote = priced(situation)
    if quote is None:
        return
    unused = 0 if quote.unused_period_credit is None else quote.unused_period_credit.amount
    # every credited yen is used by this charge or kept in the balance
    assert unused == quote.period_credit_applied + quote.credited_to_balance
    assert quote.credit == quote.period_credit_applied + quote.credit_balance_applied
    assert quote.credit_balance_after == (
        quote.credit_balance_before - quote.credit_balance_applied + quote.credited_to_balance
    )
    # every line is paid by credit or by the charge, tax once on the rest
    assert 0 <= quote.credit <= quote.subtotal
    assert quote.tax == (quote.subtotal - quote.credit) * BUNDLE.tax_rate_percent // 100
    assert quote.total == quote.subtotal - quote.credit + quote.tax >= 0
    # the invoice the charge issues adds up to exactly what is charged
    assert invoice_of(quote) == quote.total


@settings(max_examples=150, deadline=None)
@given(situations())
def test_the_credit_balance_never_goes_negative(
    situation: tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int],
) -> None:
    quote = priced(situation)
    if quote is None:
        return
    assert 0 <= quote.credit_balance_applied <= quote.credit_balance_before
    assert quote.credit_balance_after >= 0


@settings(max_examples=150, deadline=None)
@given(situations())
def test_a_pro_rata_charge_never_exceeds_a_whole_periods_delta(
    situation: tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int],
) -> None:
    quote = priced(situation)
    if quote is None or quote.new_period:
        return
    for line in quote.lines:
        assert line.delta_per_period is not None
        assert line.days is not None
        assert line.period_days is not None
        assert 0 <= line.amount <= line.delta_per_period
        assert line.amount == line.delta_per_period * line.days // line.period_days


@settings(max_examples=150, deadline=None)
@given(situations())
def test_decreases_charge_nothing_and_the_renewal_buys_the_wanted_terms(
    situation: tuple[PlanTerms, ScheduledChange | None, WantedChange, datetime, int],
) -> None:
    terms, scheduled, want, _, _ = situation
    quote = priced(situation)
    planned = renewal_terms(contract_terms(terms, scheduled=scheduled))
    planned_plan = PlanTerms(planned.billing_period, planned.seats, planned.add_ons)
    target = wanted_terms(planned_plan, want)
    if quote is None:
        # nothing to do: the renewal already buys the wanted terms
        assert _semantic(target) == _semantic(planned_plan)
        return
    renewal = renewal_after(quote)
    assert _semantic(renewal) == _semantic(target)
    no_increase = target.seats <= terms.seats and all(
        quantity <= terms.quantity_of(code) for code, quantity in target.add_ons
    )
    if no_increase and not quote.new_period:
        assert quote.lines == ()
        assert quote.total == 0
        assert not quote.changes_now


def _semantic(terms: PlanTerms) -> tuple[str, int, dict[str, int]]:
    return terms.billing_period, terms.seats, dict(terms.add_ons)
