"""The paid contract's life (SPEC §11): renewals, dunning, the credit balance.

Pure rules with the time passed in; the aggregate (``domain.organization``)
records what they decide, the sweep (``application.renewals``) asks them what
is due.

- **Renewal** at ``current_period_end`` for the same billing period, with the
  terms plus any ``scheduled_change``: one period of bundle and add-on lines
  at the catalog's prices, minus the credit balance (never below zero), tax
  once on the rest (:func:`renewal_charge`).
- **Periods** end whole calendar months after the contract's *anchor* (its
  start), so a contract started on the 31st renews on each month's last day
  and comes back to the 31st, never drifting (:func:`next_period_end`).
- **Dunning**: the first attempt is at the period's end; failed attempts are
  retried ``dunning_retry_days`` after the period's end; the contract ends
  when the last one fails (:func:`next_attempt_at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.catalog import MONTHS_PER_PERIOD, Bundle
from domain.facts import AddOns, BundleState, ContractFacts, ContractTerms, OrganizationFacts
from domain.quote import add_calendar_months
from domain.tax import consumption_tax

#: Why a contract ended (``BundleEnded.reason``).
ENDED_CANCELLED = "cancelled"
ENDED_PAYMENT_FAILED = "payment_failed"
#: A renewal with something to pay and no reusable card on file (an upgrade
#: whose total was 0 charged no card) fails with this reason.
NO_PAYMENT_METHOD = "no_payment_method"


@dataclass(frozen=True, slots=True)
class RenewalTerms:
    """What the next period is bought with: the terms plus the scheduled change."""

    billing_period: str
    seats: int
    add_ons: AddOns


@dataclass(frozen=True, slots=True)
class RenewalCharge:
    """One renewal's money, all integers in minor units."""

    currency: str
    billing_period: str
    seats: int
    add_ons: AddOns
    period_start: datetime
    period_end: datetime
    #: Quote-shaped lines: ``{kind, code, quantity, unit_price, months, amount}``.
    lines: tuple[dict[str, Any], ...]
    subtotal: int
    credit_applied: int
    tax: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "billing_period": self.billing_period,
            "seats": self.seats,
            "add_ons": [{"code": code, "quantity": qty} for code, qty in self.add_ons],
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "lines": [dict(line) for line in self.lines],
            "subtotal": self.subtotal,
            "credit_applied": self.credit_applied,
            "tax": self.tax,
            "total": self.total,
        }


def renewal_terms(terms: ContractTerms) -> RenewalTerms:
    change = terms.scheduled_change
    if change is None:
        return RenewalTerms(terms.billing_period, terms.seats, terms.add_ons)
    return RenewalTerms(
        billing_period=change.billing_period or terms.billing_period,
        seats=terms.seats if change.seats is None else change.seats,
        add_ons=terms.add_ons if change.add_ons is None else change.add_ons,
    )


def next_period_end(anchor: datetime, current_end: datetime, billing_period: str) -> datetime:
    """The first ``anchor + n × months`` after ``current_end`` (calendar months)."""
    months = MONTHS_PER_PERIOD[billing_period]
    elapsed = (current_end.year - anchor.year) * 12 + current_end.month - anchor.month
    n = max(1, elapsed // months)
    while add_calendar_months(anchor, n * months) <= current_end:
        n += 1
    while n > 1 and add_calendar_months(anchor, (n - 1) * months) > current_end:
        n -= 1
    return add_calendar_months(anchor, n * months)


def period_lines(bundle: Bundle, terms: RenewalTerms) -> tuple[dict[str, Any], ...]:
    """One period of the bundle's and each add-on's line at the catalog's prices (§5)."""
    months = MONTHS_PER_PERIOD[terms.billing_period]
    unit = bundle.price_per_user_month(terms.billing_period)
    lines = [
        {
            "kind": "bundle",
            "code": bundle.code,
            "quantity": terms.seats,
            "unit_price": unit,
            "months": months,
            "amount": terms.seats * unit * months,
        }
    ]
    for code, quantity in terms.add_ons:
        add_on = bundle.add_on(code)
        price = 0 if add_on is None else add_on.monthly_price
        lines.append(
            {
                "kind": "add_on",
                "code": code,
                "quantity": quantity,
                "unit_price": price,
                "months": months,
                "amount": quantity * price * months,
            }
        )
    return tuple(lines)


def apply_credit(subtotal: int, balance: int, tax_rate_percent: int) -> tuple[int, int, int]:
    """``(credit_applied, tax, total)``: the balance first, never below zero, tax once."""
    applied = max(0, min(balance, subtotal))
    taxable = subtotal - applied
    tax = consumption_tax(taxable, tax_rate_percent)
    return applied, tax, taxable + tax


def renewal_charge(bundle: Bundle, contract: ContractFacts) -> RenewalCharge:
    """What renewing ``contract`` at its period's end costs."""
    terms = contract.terms
    wanted = renewal_terms(terms)
    lines = period_lines(bundle, wanted)
    subtotal = sum(int(line["amount"]) for line in lines)
    applied, tax, total = apply_credit(subtotal, terms.credit_balance, bundle.tax_rate_percent)
    start = terms.current_period_end
    return RenewalCharge(
        currency=bundle.currency,
        billing_period=wanted.billing_period,
        seats=wanted.seats,
        add_ons=wanted.add_ons,
        period_start=start,
        period_end=next_period_end(contract.anchor, start, wanted.billing_period),
        lines=lines,
        subtotal=subtotal,
        credit_applied=applied,
        tax=tax,
        total=total,
    )


def next_attempt_at(
    period_end: datetime, failed_attempts: int, retry_days: tuple[int, ...]
) -> datetime | None:
    """When the next attempt is due after ``failed_attempts`` scheduled failures.

    0 failures: the period's end. ``k`` failures: ``retry_days[k-1]`` days
    after the period's end. ``None`` once every retry has failed (the end).
    """
    if failed_attempts <= 0:
        return period_end
    if failed_attempts > len(retry_days):
        return None
    return period_end + timedelta(days=retry_days[failed_attempts - 1])


def contract_due_at(facts: OrganizationFacts) -> datetime | None:
    """The moment time alone makes the contract need a decision recorded, or ``None``.

    ``active``: its period's end (a renewal, or the end of a cancelled
    contract); ``past_due``: the next payment attempt. A renewal charge in
    flight is the reconcile command's (its moment is when it started).
    """
    contract = facts.contract
    if contract is None or facts.bundle_state not in BundleState.CONTRACTED:
        return None
    if contract.pending_renewal is not None:
        return contract.pending_renewal.started_at
    if facts.bundle_state == BundleState.PAST_DUE:
        return contract.terms.next_payment_attempt_at
    return contract.terms.current_period_end


def renewal_due(facts: OrganizationFacts, now: datetime) -> bool:
    """Whether a (scheduled) renewal attempt is due at ``now`` and none is in flight."""
    contract = facts.contract
    # A mid-term change being charged settles first: the renewal buys its terms.
    if (
        contract is None
        or contract.pending_renewal is not None
        or contract.pending_change is not None
    ):
        return False
    terms = contract.terms
    if facts.bundle_state == BundleState.ACTIVE:
        return not terms.cancel_at_period_end and now >= terms.current_period_end
    if facts.bundle_state == BundleState.PAST_DUE:
        due = terms.next_payment_attempt_at
        return due is not None and now >= due
    return False


def end_due(facts: OrganizationFacts, now: datetime) -> bool:
    """Whether a contract set to cancel has reached its period's end."""
    contract = facts.contract
    return (
        contract is not None
        and facts.bundle_state == BundleState.ACTIVE
        and contract.terms.cancel_at_period_end
        and contract.pending_renewal is None
        and contract.pending_change is None
        and now >= contract.terms.current_period_end
    )


#: The states whose view carries the contract block (SPEC §10: from ``active`` on).
SHOWS_CONTRACT = (BundleState.ACTIVE, BundleState.PAST_DUE, BundleState.ENDED)


def contract_block(facts: OrganizationFacts) -> dict[str, Any] | None:
    """The access view's and ``GET .../subscription``'s ``contract`` block, or ``None``.

    The terms of :class:`~domain.facts.ContractTerms`; an ended contract adds
    when and why it ended.
    """
    contract = facts.contract
    if contract is None or facts.bundle_state not in SHOWS_CONTRACT:
        return None
    block = contract.terms.to_dict()
    if facts.bundle_state == BundleState.ENDED:
        block["ended_at"] = None if contract.ended_at is None else contract.ended_at.isoformat()
        block["end_reason"] = contract.end_reason
    return block
