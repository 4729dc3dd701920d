"""Changing the plan mid-term (SPEC §11): the pure pricing of a wanted change.

A change names the terms the customer wants (``seats``, ``add_ons``,
``billing_period``; a field left out is not changed). Against the terms in
force now, the terms planned for the next renewal (the current terms plus any
scheduled change) and the time, :func:`price_change` decides what happens
when, and what it costs (integers, minor units):

- **increases** (more seats, a new add-on, a larger quantity) take effect at
  once; each increased line costs
  ``floor(delta_per_period × remaining_days / period_days)``, days counted as
  in §5 (:func:`domain.quote.days_of_period`, :func:`domain.quote.pro_rata`);
- **decreases** (fewer seats, a smaller or removed add-on) take effect at the
  next renewal, no refund: they become the *scheduled change*;
- a **longer period** (monthly → yearly) takes effect at once: a new yearly
  period starts now with every wanted term (and what was scheduled), priced
  in full, and the unused part of the current period is credited as in §5
  (``floor(period value × remaining_days / period_days)``); a **shorter
  period** (yearly → monthly) waits for the renewal;
- the credit balance is used first (before tax), tax once on the rest
  (:func:`domain.tax.consumption_tax`); a period credit above the new
  period's price goes to the credit balance, so no yen is created or lost.

The scheduled change is the difference between the terms planned for the
renewal and the terms in force after the change; the latest change decides
the whole plan, so it *replaces* any earlier scheduled change (a field the
change leaves out keeps what was scheduled for it). A change that alters
neither the terms now nor the plan for the renewal is ``422 no_change``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.catalog import MONTHS_PER_PERIOD, Bundle
from domain.clock import ensure_utc
from domain.contract import RenewalTerms, apply_credit, period_lines, renewal_terms
from domain.errors import InvalidRequest
from domain.facts import AddOns, ContractTerms, ScheduledChange
from domain.invoice import (
    CreditLine,
    InvoiceLine,
    balance_credit_line,
    period_line,
    pro_rata_line,
    unused_period_credit_line,
)
from domain.quote import (
    AddOnRequest,
    add_calendar_months,
    days_of_period,
    pro_rata,
    terms_field_errors,
)

#: When a part of a change takes effect.
NOW = "now"
AT_RENEWAL = "at_renewal"


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """What a bundle contract buys each period: the period, seats and add-ons."""

    billing_period: str
    seats: int
    #: ``(code, quantity)`` pairs, each code once, quantities ≥ 1.
    add_ons: AddOns = ()

    def quantity_of(self, code: str) -> int:
        return next((quantity for c, quantity in self.add_ons if c == code), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "billing_period": self.billing_period,
            "seats": self.seats,
            "add_ons": _add_ons_to_list(self.add_ons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanTerms:
        return cls(
            str(data["billing_period"]), int(data["seats"]), _add_ons_from_list(data["add_ons"])
        )


def scheduled_between(now: PlanTerms, planned: PlanTerms) -> ScheduledChange | None:
    """The change that turns ``now`` into ``planned`` at the renewal; ``None`` if none."""
    change = ScheduledChange(
        billing_period=None
        if planned.billing_period == now.billing_period
        else planned.billing_period,
        seats=None if planned.seats == now.seats else planned.seats,
        add_ons=None if _same_add_ons(planned.add_ons, now.add_ons) else planned.add_ons,
    )
    return None if change == ScheduledChange() else change


@dataclass(frozen=True, slots=True)
class WantedChange:
    """The body of a change: the wanted terms; ``None`` is a field left out."""

    seats: int | None = None
    #: The whole wanted add-on list (``()`` removes every add-on), or ``None``.
    add_ons: tuple[AddOnRequest, ...] | None = None
    billing_period: str | None = None


@dataclass(frozen=True, slots=True)
class LineChange:
    """One line of the terms that the change alters, and when."""

    kind: str  # "bundle" | "add_on" | "billing_period"
    code: str
    before: int | str
    after: int | str
    takes_effect: str  # NOW | AT_RENEWAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "from": self.before,
            "to": self.after,
            "takes_effect": self.takes_effect,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineChange:
        return cls(data["kind"], data["code"], data["from"], data["to"], data["takes_effect"])


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """A charged line: a pro-rata increase (``days``) or a whole new period (``months``)."""

    kind: str  # "bundle" | "add_on"
    code: str
    quantity: int
    unit_price: int
    amount: int
    months: int | None = None
    days: int | None = None
    #: Pro-rata lines: the increase's price for a whole period and the period's days.
    delta_per_period: int | None = None
    period_days: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "months": self.months,
            "days": self.days,
            "delta_per_period": self.delta_per_period,
            "period_days": self.period_days,
            "amount": self.amount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChargeLine:
        return cls(
            kind=data["kind"],
            code=data["code"],
            quantity=data["quantity"],
            unit_price=data["unit_price"],
            amount=data["amount"],
            months=data.get("months"),
            days=data.get("days"),
            delta_per_period=data.get("delta_per_period"),
            period_days=data.get("period_days"),
        )


@dataclass(frozen=True, slots=True)
class UnusedPeriodCredit:
    """The unused part of the running period when a longer period starts now."""

    billing_period: str
    period_amount: int
    remaining_days: int
    total_days: int
    amount: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "billing_period": self.billing_period,
            "period_amount": self.period_amount,
            "remaining_days": self.remaining_days,
            "total_days": self.total_days,
            "amount": self.amount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnusedPeriodCredit:
        return cls(
            billing_period=data["billing_period"],
            period_amount=data["period_amount"],
            remaining_days=data["remaining_days"],
            total_days=data["total_days"],
            amount=data["amount"],
        )


@dataclass(frozen=True, slots=True)
class ChangeQuote:
    """What a change does and costs at one moment; recorded as it was quoted."""

    currency: str
    at: datetime
    #: The terms in force before the change, and after it (from now on).
    terms_before: PlanTerms
    terms_after: PlanTerms
    #: What was scheduled for the renewal before, and what is scheduled now.
    scheduled_before: ScheduledChange | None
    scheduled_change: ScheduledChange | None
    changes: tuple[LineChange, ...]
    #: The charged period: from now to the current period's end, or a new period.
    period_start: datetime
    period_end: datetime
    #: ``True`` when a longer period starts now (monthly → yearly).
    new_period: bool
    lines: tuple[ChargeLine, ...]
    subtotal: int
    unused_period_credit: UnusedPeriodCredit | None
    #: The part of the unused period credit used by this charge; the rest goes
    #: to the credit balance.
    period_credit_applied: int
    credited_to_balance: int
    credit_balance_before: int
    credit_balance_applied: int
    credit_balance_after: int
    #: ``period_credit_applied + credit_balance_applied`` (never above the subtotal).
    credit: int
    tax: int
    total: int

    @property
    def changes_now(self) -> bool:
        """Whether the terms change at once (a charge and an invoice: ``BundleChanged``)."""
        return self.new_period or self.terms_after != self.terms_before

    @property
    def schedule_changes(self) -> bool:
        """Whether the plan for the renewal changes (``BundleChangeScheduled``)."""
        return not same_schedule(self.scheduled_change, self.scheduled_before)

    def invoice_lines(self, bundle: Bundle) -> tuple[InvoiceLine, ...]:
        """The charged lines as invoice lines (English and Japanese descriptions)."""
        lines: list[InvoiceLine] = []
        for line in self.lines:
            if line.months is not None:
                lines.append(
                    period_line(
                        bundle,
                        kind=line.kind,
                        code=line.code,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        months=line.months,
                        billing_period=self.terms_after.billing_period,
                    )
                )
            else:
                assert line.days is not None
                lines.append(
                    pro_rata_line(
                        bundle,
                        kind=line.kind,
                        code=line.code,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        days=line.days,
                        amount=line.amount,
                    )
                )
        return tuple(lines)

    def invoice_credits(self, bundle: Bundle) -> tuple[CreditLine, ...]:
        """The credits this charge used: the unused period first, then the balance."""
        credits: list[CreditLine] = []
        unused = self.unused_period_credit
        if unused is not None and self.period_credit_applied > 0:
            credits.append(
                unused_period_credit_line(
                    bundle, unused.billing_period, unused.remaining_days, self.period_credit_applied
                )
            )
        if self.credit_balance_applied > 0:
            credits.append(balance_credit_line(self.credit_balance_applied))
        return tuple(credits)

    def to_dict(self) -> dict[str, Any]:
        scheduled = self.scheduled_change
        return {
            "currency": self.currency,
            "at": self.at.isoformat(),
            "terms_before": self.terms_before.to_dict(),
            "terms_after": self.terms_after.to_dict(),
            "scheduled_change": None if scheduled is None else scheduled.to_dict(),
            "scheduled_change_before": None
            if self.scheduled_before is None
            else self.scheduled_before.to_dict(),
            "changes": [change.to_dict() for change in self.changes],
            "changes_now": self.changes_now,
            "new_period": self.new_period,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "lines": [line.to_dict() for line in self.lines],
            "subtotal": self.subtotal,
            "unused_period_credit": None
            if self.unused_period_credit is None
            else self.unused_period_credit.to_dict(),
            "period_credit_applied": self.period_credit_applied,
            "credited_to_balance": self.credited_to_balance,
            "credit_balance_before": self.credit_balance_before,
            "credit_balance_applied": self.credit_balance_applied,
            "credit_balance_after": self.credit_balance_after,
            "credit": self.credit,
            "tax": self.tax,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeQuote:
        """Read the recorded form back: a pending change is charged exactly as quoted."""
        scheduled = data.get("scheduled_change")
        before = data.get("scheduled_change_before")
        unused = data.get("unused_period_credit")
        return cls(
            currency=data["currency"],
            at=datetime.fromisoformat(data["at"]),
            terms_before=PlanTerms.from_dict(data["terms_before"]),
            terms_after=PlanTerms.from_dict(data["terms_after"]),
            scheduled_before=None if before is None else ScheduledChange.from_dict(before),
            scheduled_change=None if scheduled is None else ScheduledChange.from_dict(scheduled),
            changes=tuple(LineChange.from_dict(c) for c in data["changes"]),
            period_start=datetime.fromisoformat(data["period_start"]),
            period_end=datetime.fromisoformat(data["period_end"]),
            new_period=bool(data["new_period"]),
            lines=tuple(ChargeLine.from_dict(line) for line in data["lines"]),
            subtotal=data["subtotal"],
            unused_period_credit=None if unused is None else UnusedPeriodCredit.from_dict(unused),
            period_credit_applied=data["period_credit_applied"],
            credited_to_balance=data["credited_to_balance"],
            credit_balance_before=data["credit_balance_before"],
            credit_balance_applied=data["credit_balance_applied"],
            credit_balance_after=data["credit_balance_after"],
            credit=data["credit"],
            tax=data["tax"],
            total=data["total"],
        )


def validate_change(bundle: Bundle, wanted: WantedChange) -> None:
    """The input rules of a change (those of the upgrade's terms, on the fields given)."""
    errors = terms_field_errors(
        bundle,
        billing_period=wanted.billing_period,
        seats=wanted.seats,
        add_ons=wanted.add_ons or (),
    )
    if errors:
        raise InvalidRequest(
            "The change request is invalid.",
            code="validation_failed",
            details={"fields": errors},
        )


def terms_in_force(terms: ContractTerms) -> PlanTerms:
    """What the contract buys in its running period."""
    return PlanTerms(terms.billing_period, terms.seats, terms.add_ons)


def planned_terms(terms: ContractTerms) -> PlanTerms:
    """What the next renewal buys: the terms plus the scheduled change (the renewal's rule)."""
    planned = renewal_terms(terms)
    return PlanTerms(planned.billing_period, planned.seats, planned.add_ons)


def wanted_terms(planned: PlanTerms, wanted: WantedChange) -> PlanTerms:
    """The terms the customer wants for the next period: ``planned`` with the change."""
    return PlanTerms(
        billing_period=planned.billing_period
        if wanted.billing_period is None
        else wanted.billing_period,
        seats=planned.seats if wanted.seats is None else wanted.seats,
        add_ons=planned.add_ons
        if wanted.add_ons is None
        else tuple((a.code, a.quantity) for a in wanted.add_ons),
    )


def price_change(
    bundle: Bundle, terms: ContractTerms, wanted: WantedChange, at: datetime
) -> ChangeQuote:
    """Price ``wanted`` against the running contract's ``terms`` at ``at``.

    Raises ``InvalidRequest`` (``validation_failed``, ``no_change``).
    """
    at = ensure_utc(at)
    validate_change(bundle, wanted)
    target = wanted_terms(planned_terms(terms), wanted)
    if MONTHS_PER_PERIOD[target.billing_period] > MONTHS_PER_PERIOD[terms.billing_period]:
        quote = _longer_period_now(bundle, terms, target, at)
    else:
        quote = _within_the_period(bundle, terms, target, at)
    if not quote.changes_now and not quote.schedule_changes:
        scheduled = terms.scheduled_change
        raise InvalidRequest(
            "The change alters nothing: these are the terms now and at the renewal.",
            code="no_change",
            details={
                "terms": terms_in_force(terms).to_dict(),
                "scheduled_change": None if scheduled is None else scheduled.to_dict(),
            },
        )
    return quote


def _days_left(terms: ContractTerms, at: datetime) -> tuple[int, int]:
    """§5's day counting on the running period: ``(remaining_days, period_days)``."""
    return days_of_period(
        ensure_utc(terms.current_period_start).date(),
        ensure_utc(terms.current_period_end).date(),
        at.date(),
    )


def _within_the_period(
    bundle: Bundle, contract: ContractTerms, target: PlanTerms, at: datetime
) -> ChangeQuote:
    """Increases now (pro rata), decreases and a shorter period at the renewal."""
    terms = terms_in_force(contract)
    after = PlanTerms(
        billing_period=terms.billing_period,
        seats=max(terms.seats, target.seats),
        add_ons=_larger_of(terms.add_ons, target.add_ons),
    )
    remaining_days, period_days = _days_left(contract, at)
    months = MONTHS_PER_PERIOD[terms.billing_period]
    lines: list[ChargeLine] = []
    for kind, code, unit_price, before, now in _line_quantities(bundle, terms, after):
        delta = now - before
        if delta <= 0:
            continue
        delta_per_period = delta * unit_price * months
        lines.append(
            ChargeLine(
                kind=kind,
                code=code,
                quantity=delta,
                unit_price=unit_price,
                days=remaining_days,
                delta_per_period=delta_per_period,
                period_days=period_days,
                amount=pro_rata(delta_per_period, remaining_days, period_days),
            )
        )
    subtotal = sum(line.amount for line in lines)
    balance = contract.credit_balance
    applied, tax, total = apply_credit(subtotal, balance, bundle.tax_rate_percent)
    return ChangeQuote(
        currency=bundle.currency,
        at=at,
        terms_before=terms,
        terms_after=after,
        scheduled_before=contract.scheduled_change,
        scheduled_change=scheduled_between(after, target),
        changes=_changes(bundle, terms, after, target),
        period_start=at,
        period_end=ensure_utc(contract.current_period_end),
        new_period=False,
        lines=tuple(lines),
        subtotal=subtotal,
        unused_period_credit=None,
        period_credit_applied=0,
        credited_to_balance=0,
        credit_balance_before=balance,
        credit_balance_applied=applied,
        credit_balance_after=balance - applied,
        credit=applied,
        tax=tax,
        total=total,
    )


def _longer_period_now(
    bundle: Bundle, contract: ContractTerms, target: PlanTerms, at: datetime
) -> ChangeQuote:
    """A new, longer period starts now with the wanted terms; the old one's rest is credited."""
    terms = terms_in_force(contract)
    lines = tuple(
        ChargeLine(
            kind=str(line["kind"]),
            code=str(line["code"]),
            quantity=int(line["quantity"]),
            unit_price=int(line["unit_price"]),
            months=int(line["months"]),
            amount=int(line["amount"]),
        )
        for line in period_lines(bundle, _renewal(target))
    )
    subtotal = sum(line.amount for line in lines)
    remaining_days, total_days = _days_left(contract, at)
    period_amount = period_value(bundle, terms)
    unused = UnusedPeriodCredit(
        billing_period=terms.billing_period,
        period_amount=period_amount,
        remaining_days=remaining_days,
        total_days=total_days,
        amount=pro_rata(period_amount, remaining_days, total_days),
    )
    period_credit_applied = min(unused.amount, subtotal)
    credited_to_balance = unused.amount - period_credit_applied
    balance = contract.credit_balance
    balance_applied, tax, total = apply_credit(
        subtotal - period_credit_applied, balance, bundle.tax_rate_percent
    )
    return ChangeQuote(
        currency=bundle.currency,
        at=at,
        terms_before=terms,
        terms_after=target,
        scheduled_before=contract.scheduled_change,
        scheduled_change=None,
        changes=_changes(bundle, terms, target, target),
        period_start=at,
        period_end=add_calendar_months(at, MONTHS_PER_PERIOD[target.billing_period]),
        new_period=True,
        lines=lines,
        subtotal=subtotal,
        unused_period_credit=unused,
        period_credit_applied=period_credit_applied,
        credited_to_balance=credited_to_balance,
        credit_balance_before=balance,
        credit_balance_applied=balance_applied,
        credit_balance_after=balance - balance_applied + credited_to_balance,
        credit=period_credit_applied + balance_applied,
        tax=tax,
        total=total,
    )


def period_value(bundle: Bundle, terms: PlanTerms) -> int:
    """What one whole period of ``terms`` costs before credits and tax (§5's prices)."""
    return sum(int(line["amount"]) for line in period_lines(bundle, _renewal(terms)))


def _renewal(terms: PlanTerms) -> RenewalTerms:
    return RenewalTerms(terms.billing_period, terms.seats, terms.add_ons)


def _line_quantities(
    bundle: Bundle, before: PlanTerms, after: PlanTerms
) -> list[tuple[str, str, int, int, int]]:
    """``(kind, code, unit price, quantity before, quantity after)`` per line.

    The bundle first, then the add-ons: those of ``before`` in their order,
    then those new in ``after`` in theirs. Prices are those of ``after``'s period.
    """
    rows = [
        (
            "bundle",
            bundle.code,
            bundle.price_per_user_month(after.billing_period),
            before.seats,
            after.seats,
        )
    ]
    codes = [code for code, _ in before.add_ons]
    codes += [code for code, _ in after.add_ons if code not in codes]
    for code in codes:
        add_on = bundle.add_on(code)
        assert add_on is not None, f"unknown add-on {code!r} in the terms"
        rows.append(
            (
                "add_on",
                code,
                add_on.monthly_price,
                before.quantity_of(code),
                after.quantity_of(code),
            )
        )
    return rows


def _larger_of(current: AddOns, wanted: AddOns) -> AddOns:
    """Per add-on, the larger quantity: increases now, decreases wait."""
    codes = [code for code, _ in current]
    codes += [code for code, _ in wanted if code not in codes]
    quantities = dict(current)
    wanted_quantities = dict(wanted)
    return tuple(
        (code, max(quantities.get(code, 0), wanted_quantities.get(code, 0))) for code in codes
    )


def _changes(
    bundle: Bundle, before: PlanTerms, after: PlanTerms, target: PlanTerms
) -> tuple[LineChange, ...]:
    """Each line the change alters: to ``after`` now, or to ``target`` at the renewal."""
    changes: list[LineChange] = []
    if target.billing_period != before.billing_period:
        changes.append(
            LineChange(
                kind="billing_period",
                code=bundle.code,
                before=before.billing_period,
                after=target.billing_period,
                takes_effect=NOW if after.billing_period == target.billing_period else AT_RENEWAL,
            )
        )
    for kind, code, _, quantity_before, wanted in _line_quantities(bundle, before, target):
        if wanted == quantity_before:
            continue
        quantity_now = after.seats if kind == "bundle" else after.quantity_of(code)
        changes.append(
            LineChange(
                kind=kind,
                code=code,
                before=quantity_before,
                after=wanted,
                takes_effect=NOW if quantity_now == wanted else AT_RENEWAL,
            )
        )
    return tuple(changes)


def same_schedule(first: ScheduledChange | None, second: ScheduledChange | None) -> bool:
    """Whether two scheduled changes plan the same renewal (add-on order aside)."""
    if first is None or second is None:
        return first is second
    return (
        first.billing_period == second.billing_period
        and first.seats == second.seats
        and (first.add_ons is None) == (second.add_ons is None)
        and _same_add_ons(first.add_ons or (), second.add_ons or ())
    )


def _same_add_ons(first: AddOns, second: AddOns) -> bool:
    """Equal as sets of ``(code, quantity)``: order is presentation, not terms."""
    return dict(first) == dict(second)


def _add_ons_to_list(add_ons: AddOns) -> list[dict[str, Any]]:
    return [{"code": code, "quantity": quantity} for code, quantity in add_ons]


def _add_ons_from_list(add_ons: Sequence[Mapping[str, Any]]) -> AddOns:
    return tuple((str(a["code"]), int(a["quantity"])) for a in add_ons)
