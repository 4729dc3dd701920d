"""Upgrade pricing (SPEC §5): integers in minor units, nothing else.

- bundle line = seats × price(period) × months; add-on line = quantity × price × months
- credit per standalone plan period still running = floor(amount_paid × remaining_days / total_days)
  (a service may hold several periods: each is credited on its own, one ``credits`` entry each)
- credit = min(sum of credits, subtotal); the rest is unapplied
- tax = floor((subtotal − credit) × rate / 100), applied once, never per line
- the contract runs one calendar month or year from the upgrade
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from domain.catalog import BILLING_PERIODS, MONTHS_PER_PERIOD, Bundle
from domain.clock import ensure_utc
from domain.errors import InvalidRequest
from domain.json_form import from_json, to_json
from domain.tax import consumption_tax

if TYPE_CHECKING:
    # Only named in signatures: facts.py holds the accepted ``Quote``.
    from domain.facts import StandaloneSubscription

MIN_SEATS = 1
MAX_SEATS = 10_000
MAX_ADD_ON_QUANTITY = 1_000


@dataclass(frozen=True, slots=True)
class AddOnRequest:
    code: str
    quantity: int


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    billing_period: str
    seats: int
    add_ons: tuple[AddOnRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class QuoteLine:
    kind: str
    code: str
    quantity: int
    unit_price: int
    months: int
    amount: int


@dataclass(frozen=True, slots=True)
class Credit:
    """One standalone plan period's unused part: one entry of the quote's ``credits``."""

    service: str
    amount_paid: int
    remaining_days: int
    total_days: int
    amount: int
    #: The period credited; ``None`` only in quotes recorded before periods
    #: were kept (events of version 1, one plan per service).
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True, slots=True)
class ServiceCredit:
    """One service's share of an upgrade's credit: the sum over its periods.

    ``amount`` = ``applied`` (taken off this upgrade's subtotal: part of the
    quote's ``credit``) + ``to_balance`` (part of ``unapplied_credit``, which
    opens the credit balance).
    """

    service: str
    periods: tuple[Credit, ...]
    remaining_days: int
    amount: int
    applied: int
    to_balance: int


def service_credits(credits: Sequence[Credit], applied: int) -> tuple[ServiceCredit, ...]:
    """The quote's period credits grouped per service, ``applied`` split among them.

    Services in the order of their first credit; the credit applied to the
    upgrade (``min(Σ credits, subtotal)``) goes to the services in that order,
    each taking up to its own amount, and the rest of each service's amount
    goes to the credit balance. So Σ ``applied`` = ``applied`` (when it is at
    most Σ credits, as a quote's ``credit`` is) and Σ ``applied`` + Σ
    ``to_balance`` = Σ credits: no yen made or lost. The one rule for the
    ``StandaloneContractTerminated`` events and the upgrade invoice's credit
    lines (``domain.invoice.applied_service_credits``).
    """
    grouped: dict[str, list[Credit]] = {}
    for credit in credits:
        grouped.setdefault(credit.service, []).append(credit)
    shares: list[ServiceCredit] = []
    remaining = applied
    for service, periods in grouped.items():
        amount = sum(c.amount for c in periods)
        taken = max(0, min(amount, remaining))
        remaining -= taken
        shares.append(
            ServiceCredit(
                service=service,
                periods=tuple(periods),
                remaining_days=sum(c.remaining_days for c in periods),
                amount=amount,
                applied=taken,
                to_balance=amount - taken,
            )
        )
    return tuple(shares)


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    billing_period: str
    seats: int
    lines: tuple[QuoteLine, ...]
    subtotal: int
    credits: tuple[Credit, ...]
    credit: int
    unapplied_credit: int
    tax: int
    total: int
    contract_start: datetime
    contract_end: datetime

    def to_dict(self) -> dict[str, Any]:
        """The SPEC §10 quote object (``domain.json_form``: keys are the fields)."""
        return to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quote:
        """The quote whose JSON form is ``data`` (an accepted quote read from its event)."""
        return from_json(cls, data)


def add_calendar_months(moment: datetime, months: int) -> datetime:
    """The same wall time ``months`` later; a day missing there clamps to month end.

    Jan 31 + 1 month is Feb 28 (or 29); Feb 29 + 12 months is Feb 28.
    """
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def days_of_period(period_start: date, period_end: date, on: date) -> tuple[int, int]:
    """``(remaining_days, total_days)`` of the period ``[period_start, period_end)`` on ``on``.

    Whole UTC days (SPEC §5): ``total_days = period_end − period_start`` and
    ``remaining_days = period_end − on``, clamped to ``[0, total_days]`` so that
    a period not yet started counts at most in full and an ended one not at all.
    Every pro-rata amount of the service (standalone credits, mid-term changes)
    counts its days here.
    """
    total_days = (period_end - period_start).days
    remaining = max(0, min((period_end - on).days, total_days))
    return remaining, total_days


def pro_rata(amount: int, remaining_days: int, total_days: int) -> int:
    """``floor(amount × remaining_days / total_days)``; 0 for an empty period."""
    return amount * remaining_days // total_days if total_days > 0 else 0


def credit_for(subscription: StandaloneSubscription, upgrade_date: date) -> Credit:
    """The unused part of what was paid for a standalone plan, rounded down."""
    remaining, total_days = days_of_period(
        subscription.period_start, subscription.period_end, upgrade_date
    )
    return Credit(
        service=subscription.service,
        amount_paid=subscription.amount_paid,
        remaining_days=remaining,
        total_days=total_days,
        amount=pro_rata(subscription.amount_paid, remaining, total_days),
        period_start=subscription.period_start,
        period_end=subscription.period_end,
    )


def terms_field_errors(
    bundle: Bundle,
    *,
    billing_period: str | None,
    seats: int | None,
    add_ons: Sequence[AddOnRequest],
) -> dict[str, list[str]]:
    """The input rules of a bundle's terms (period, seats 1..10,000, add-ons).

    ``None`` is a field not given (a mid-term change names only what it
    changes). Shared by the upgrade and the mid-term change.
    """
    errors: dict[str, list[str]] = {}
    if billing_period is not None and billing_period not in BILLING_PERIODS:
        errors.setdefault("billing_period", []).append(
            f"must be one of {', '.join(BILLING_PERIODS)}"
        )
    if seats is not None and not MIN_SEATS <= seats <= MAX_SEATS:
        errors.setdefault("seats", []).append(f"must be between {MIN_SEATS} and {MAX_SEATS}")
    seen: set[str] = set()
    for index, add_on in enumerate(add_ons):
        if bundle.add_on(add_on.code) is None:
            errors.setdefault(f"add_ons.{index}.code", []).append(f"unknown add-on {add_on.code!r}")
        if add_on.code in seen:
            errors.setdefault(f"add_ons.{index}.code", []).append(
                f"add-on {add_on.code!r} is listed twice"
            )
        seen.add(add_on.code)
        if not 1 <= add_on.quantity <= MAX_ADD_ON_QUANTITY:
            errors.setdefault(f"add_ons.{index}.quantity", []).append(
                f"must be between 1 and {MAX_ADD_ON_QUANTITY}"
            )
    return errors


def validate_upgrade_request(
    bundle: Bundle,
    request: UpgradeRequest,
    running: Sequence[StandaloneSubscription],
) -> None:
    """Refuse requests that no price can be given for (SPEC §5 input rules)."""
    errors = terms_field_errors(
        bundle, billing_period=request.billing_period, seats=request.seats, add_ons=request.add_ons
    )
    if errors:
        raise InvalidRequest(
            "The upgrade request is invalid.",
            code="validation_failed",
            details={"fields": errors},
        )
    current = max((s.seats for s in running), default=0)
    licenses: dict[str, int] = {}
    for period in running:
        licenses[period.service] = max(licenses.get(period.service, 0), period.seats)
    if request.seats < current:
        raise InvalidRequest(
            f"The bundle needs at least {current} seats: the purchased standalone "
            "plans already license that many users.",
            code="seats_below_current_licenses",
            details={
                "seats": request.seats,
                "minimum_seats": current,
                "licenses": licenses,
            },
        )


def compute_quote(
    bundle: Bundle,
    request: UpgradeRequest,
    running: Sequence[StandaloneSubscription],
    upgrade_at: datetime,
) -> Quote:
    """Price an upgrade at ``upgrade_at`` with credits for the running plans."""
    upgrade_at = ensure_utc(upgrade_at)
    validate_upgrade_request(bundle, request, running)
    months = MONTHS_PER_PERIOD[request.billing_period]
    unit_price = bundle.price_per_user_month(request.billing_period)
    lines = [
        QuoteLine(
            kind="bundle",
            code=bundle.code,
            quantity=request.seats,
            unit_price=unit_price,
            months=months,
            amount=request.seats * unit_price * months,
        )
    ]
    for add_on_request in request.add_ons:
        add_on = bundle.add_on(add_on_request.code)
        assert add_on is not None  # validated above
        lines.append(
            QuoteLine(
                kind="add_on",
                code=add_on.code,
                quantity=add_on_request.quantity,
                unit_price=add_on.monthly_price,
                months=months,
                amount=add_on_request.quantity * add_on.monthly_price * months,
            )
        )
    subtotal = sum(line.amount for line in lines)
    upgrade_date = upgrade_at.date()
    credits = tuple(credit_for(s, upgrade_date) for s in running)
    credit_total = sum(c.amount for c in credits)
    credit = min(credit_total, subtotal)
    taxable = subtotal - credit
    tax = consumption_tax(taxable, bundle.tax_rate_percent)
    return Quote(
        currency=bundle.currency,
        billing_period=request.billing_period,
        seats=request.seats,
        lines=tuple(lines),
        subtotal=subtotal,
        credits=credits,
        credit=credit,
        unapplied_credit=credit_total - credit,
        tax=tax,
        total=taxable + tax,
        contract_start=upgrade_at,
        contract_end=add_calendar_months(upgrade_at, months),
    )
