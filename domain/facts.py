"""The organization's state as plain, immutable facts.

The aggregate holds exactly one :class:`OrganizationFacts`; every event
*evolves* it into the next one. Because the facts are a pure value with a
JSON form, the same rules (access view, carry-over, quote) run unchanged in
the aggregate, in the projections (which store the facts in their rows) and
in the audit replay tool (which folds events from nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from domain.json_form import codec, from_json, to_json
from domain.quote import Quote

GENESIS_LINK = "0" * 64


class BundleState:
    """The bundle states of SPEC §4 (``trial_expired`` is also reached by time)."""

    NONE = "none"
    TRIAL = "trial"
    TRIAL_EXPIRED = "trial_expired"
    CANCELLED = "cancelled"
    ACTIVE = "active"
    #: A renewal payment failed; access stays while it is retried (SPEC §11).
    PAST_DUE = "past_due"
    #: The contract ended (cancelled at period end, or the last attempt failed).
    ENDED = "ended"

    ALL = (NONE, TRIAL, TRIAL_EXPIRED, CANCELLED, ACTIVE, PAST_DUE, ENDED)
    #: The states in which a paid contract runs (paid · bundle · bundle URL).
    CONTRACTED = (ACTIVE, PAST_DUE)


@dataclass(frozen=True, slots=True)
class ServiceAdmins:
    service: str
    super_admin: str
    admins: tuple[str, ...]

    def has_admin_rights(self, user_id: str) -> bool:
        return user_id == self.super_admin or user_id in self.admins


@dataclass(frozen=True, slots=True)
class StandaloneSubscription:
    """One paid period of a standalone plan: the half-open ``[start, end)``.

    A service may hold several periods (a renewal recorded before the upgrade
    adds one); each is a payment of its own, credited for its own unused days
    (docs/domain.md, "Standalone plans and P").
    """

    service: str
    seats: int
    billing_period: str
    amount_paid: int
    period_start: date
    period_end: date
    #: Ended by the upgrade (``StandaloneContractTerminated``), whatever its dates:
    #: its unused days were credited once and never count again.
    terminated: bool = False

    def has_ended(self, on: date) -> bool:
        return on >= self.period_end

    def is_running(self, on: date) -> bool:
        """Paid for and not over on ``on``: not ended (a period not yet started
        counts) and not terminated by an upgrade."""
        return not self.terminated and on < self.period_end

    @property
    def total_days(self) -> int:
        return (self.period_end - self.period_start).days


@dataclass(frozen=True, slots=True)
class TrialFacts:
    started_at: datetime
    started_by: str
    ends_at: datetime
    extensions_used: int
    carried_over: tuple[str, ...]
    usable_in_bundle: tuple[str, ...]
    standalone_only: tuple[str, ...]
    trial_services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingCheckout:
    checkout_id: str
    by: str
    started_at: datetime
    idempotency_key: str | None
    #: The quote the customer accepted: exactly what the gateway is charged.
    quote: Quote
    billing_contact: dict[str, Any]
    add_ons: tuple[tuple[str, int], ...]


AddOns = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """The card on file: what is shown (brand, last 4) and the gateway's reusable
    reference (``pm_…``) that later charges use. Never card data."""

    brand: str | None
    last4: str | None
    #: The gateway's reusable payment method (``None``: nothing was ever charged).
    reference: str | None = None
    gateway: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "last4": self.last4,
            "reference": self.reference,
            "gateway": self.gateway,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentMethod:
        return cls(data.get("brand"), data.get("last4"), data.get("reference"), data.get("gateway"))

    def shown(self) -> dict[str, Any]:
        """The contract block's ``payment_method``: ``{brand, last4}``."""
        return {"brand": self.brand, "last4": self.last4}


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """Terms that take effect at the next renewal (SPEC §11); ``None`` keeps a term."""

    seats: int | None = None
    add_ons: AddOns | None = None
    billing_period: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seats": self.seats,
            "add_ons": None
            if self.add_ons is None
            else [{"code": code, "quantity": qty} for code, qty in self.add_ons],
            "billing_period": self.billing_period,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduledChange:
        add_ons = data.get("add_ons")
        return cls(
            seats=data.get("seats"),
            add_ons=None
            if add_ons is None
            else tuple((a["code"], int(a["quantity"])) for a in add_ons),
            billing_period=data.get("billing_period"),
        )


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """The contract's terms (SPEC §11): the one dataclass the contract block,
    ``GET .../subscription``, renewals and changes read. Extend it here."""

    billing_period: str
    seats: int
    add_ons: AddOns
    current_period_start: datetime
    current_period_end: datetime
    payment_method: PaymentMethod
    cancel_at_period_end: bool = False
    scheduled_change: ScheduledChange | None = None
    #: Money the organization holds with us (minor units, never negative).
    credit_balance: int = 0
    #: While renewal payments fail: since when, and when the next attempt is.
    past_due_since: datetime | None = None
    next_payment_attempt_at: datetime | None = None

    def updated(self, **changes: Any) -> ContractTerms:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The §11 contract block (``past_due_*`` only while payments fail)."""
        data: dict[str, Any] = {
            "billing_period": self.billing_period,
            "seats": self.seats,
            "add_ons": [{"code": code, "quantity": qty} for code, qty in self.add_ons],
            "current_period_start": self.current_period_start.isoformat(),
            "current_period_end": self.current_period_end.isoformat(),
            "cancel_at_period_end": self.cancel_at_period_end,
            "scheduled_change": None
            if self.scheduled_change is None
            else self.scheduled_change.to_dict(),
            "credit_balance": self.credit_balance,
            "payment_method": self.payment_method.shown(),
        }
        if self.past_due_since is not None:
            data["past_due_since"] = self.past_due_since.isoformat()
            data["next_payment_attempt_at"] = _dt(self.next_payment_attempt_at)
        return data

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in snapshots and view rows (the card's reference too)."""
        return {
            **self.to_dict(),
            "payment_method": self.payment_method.to_dict(),
            "past_due_since": _dt(self.past_due_since),
            "next_payment_attempt_at": _dt(self.next_payment_attempt_at),
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> ContractTerms:
        change = data.get("scheduled_change")
        return cls(
            billing_period=data["billing_period"],
            seats=data["seats"],
            add_ons=tuple((a["code"], int(a["quantity"])) for a in data["add_ons"]),
            current_period_start=_req_dt(data["current_period_start"]),
            current_period_end=_req_dt(data["current_period_end"]),
            payment_method=PaymentMethod.from_dict(data["payment_method"]),
            cancel_at_period_end=bool(data.get("cancel_at_period_end", False)),
            scheduled_change=None if change is None else ScheduledChange.from_dict(change),
            credit_balance=int(data.get("credit_balance", 0)),
            past_due_since=_parse_dt(data.get("past_due_since")),
            next_payment_attempt_at=_parse_dt(data.get("next_payment_attempt_at")),
        )


@dataclass(frozen=True, slots=True)
class PendingRenewal:
    """A renewal charge recorded as intended and not yet settled (SPEC §5's order)."""

    renewal_id: str
    started_at: datetime
    #: 1 for the charge at the period's end, then one more per retry.
    attempt: int
    #: Whether this attempt is one of the dunning schedule's (a retry after a
    #: card change is not: its failure leaves the schedule as it was).
    scheduled: bool
    #: The charge as recorded in RenewalChargeStarted (exactly what is charged).
    charge: dict[str, Any]
    #: The gateway's payment method the intent charges (``None``: no card on file).
    payment_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "renewal_id": self.renewal_id,
            "started_at": self.started_at.isoformat(),
            "attempt": self.attempt,
            "scheduled": self.scheduled,
            "charge": self.charge,
            "payment_method": self.payment_method,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingRenewal:
        return cls(
            renewal_id=data["renewal_id"],
            started_at=_req_dt(data["started_at"]),
            attempt=int(data["attempt"]),
            scheduled=bool(data["scheduled"]),
            charge=dict(data["charge"]),
            payment_method=data.get("payment_method"),
        )


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A mid-term change's charge recorded as intended and not yet settled (§5's order)."""

    change_id: str
    by: str
    started_at: datetime
    idempotency_key: str | None
    #: The change as quoted (:meth:`domain.contract_change.ChangeQuote.to_dict`):
    #: exactly what is charged and what takes effect.
    quote: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "by": self.by,
            "started_at": self.started_at.isoformat(),
            "idempotency_key": self.idempotency_key,
            "quote": self.quote,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingChange:
        return cls(
            change_id=data["change_id"],
            by=data["by"],
            started_at=_req_dt(data["started_at"]),
            idempotency_key=data.get("idempotency_key"),
            quote=dict(data["quote"]),
        )


@dataclass(frozen=True, slots=True)
class ContractFacts:
    """The paid bundle contract, from the upgrade until it ends (and after)."""

    #: The checkout whose purchase started the contract.
    checkout_id: str
    terms: ContractTerms
    #: The total and charge id of the contract's latest charge (``None``: nothing charged).
    total: int
    charge_id: str | None
    #: When the contract started, and the moment its periods are counted from
    #: (periods end ``n`` calendar months after it, so month ends do not drift).
    started_at: datetime
    anchor: datetime
    billing_contact: dict[str, Any] = field(default_factory=dict)
    #: Scheduled attempts failed since the period's end (the dunning count).
    failed_attempts: int = 0
    #: Every attempt made for the current renewal (scheduled or not).
    attempts: int = 0
    pending_renewal: PendingRenewal | None = None
    #: A mid-term change being charged (SPEC §11), settled by its outcome or reconcile.
    pending_change: PendingChange | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None

    # The first names of the terms, still read by older code.
    @property
    def billing_period(self) -> str:
        return self.terms.billing_period

    @property
    def seats(self) -> int:
        return self.terms.seats

    @property
    def add_ons(self) -> AddOns:
        return self.terms.add_ons

    @property
    def starts_at(self) -> datetime:
        return self.terms.current_period_start

    @property
    def ends_at(self) -> datetime:
        """The current period's end: the next renewal."""
        return self.terms.current_period_end

    def updated(self, **changes: Any) -> ContractFacts:
        return replace(self, **changes)

    def with_terms(self, **changes: Any) -> ContractFacts:
        return replace(self, terms=replace(self.terms, **changes))


# Not ``slots``: :meth:`OrganizationFacts.updated` copies the instance dict,
# which is what makes replaying an event cheap (docs/performance.md).
@dataclass(frozen=True)
class OrganizationFacts:
    organization_id: str
    name: str
    country: str
    owner_user_id: str
    registered_at: datetime
    #: The standalone plans' periods: services in the order they were first
    #: recorded, each service's periods in ``period_start`` order.
    subscriptions: tuple[StandaloneSubscription, ...] = ()
    #: Who administers each service (set with a subscription or on its own).
    service_admins: tuple[ServiceAdmins, ...] = ()
    #: The *recorded* state; a trial past its end reads as ``trial_expired``
    #: before the sweep records it (see ``domain.bundle_state``).
    bundle_state: str = BundleState.NONE
    trial: TrialFacts | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    downgraded_to_free: tuple[str, ...] = ()
    pending_checkout: PendingCheckout | None = None
    #: Its JSON form is ``contract_to_dict`` (it reads older forms too).
    contract: ContractFacts | None = field(
        default=None,
        # Lambdas: the two functions are defined further down this module.
        metadata=codec(
            lambda c: contract_to_dict(c),  # noqa: PLW0108
            lambda d: contract_from_dict(d),  # noqa: PLW0108
        ),
    )
    #: The trial end that ``trial.will_end`` was recorded for (one reminder per end).
    trial_reminded_for: datetime | None = None
    #: The renewal that ``bundle.renewal_upcoming`` was recorded for.
    renewal_reminded_for: datetime | None = None
    chain_head: str = field(default=GENESIS_LINK)

    @property
    def trial_used(self) -> bool:
        return self.trial is not None

    def periods(self, service: str) -> tuple[StandaloneSubscription, ...]:
        """Every recorded period of ``service`` (ended and terminated ones too)."""
        return tuple(s for s in self.subscriptions if s.service == service)

    def admins_of(self, service: str) -> ServiceAdmins | None:
        return next((a for a in self.service_admins if a.service == service), None)

    def purchased_services(self, on: date) -> tuple[str, ...]:
        """Services with a paid standalone plan whose period has not ended (P).

        Standalone plans end when the bundle is bought (their contracts are
        terminated and credited), so an active bundle has no P.
        """
        return tuple(dict.fromkeys(s.service for s in self.subscriptions if s.is_running(on)))

    def running_subscriptions(self, on: date) -> tuple[StandaloneSubscription, ...]:
        """The periods still running on ``on`` (each one is credited at an upgrade)."""
        return tuple(s for s in self.subscriptions if s.is_running(on))

    def updated(self, **changes: Any) -> OrganizationFacts:
        """A copy with ``changes``, like :func:`dataclasses.replace` but several
        times faster: every replayed event makes one, on every load, rebuild
        and replay."""
        if not changes.keys() <= self.__dict__.keys():  # no set built when all are known
            unknown = changes.keys() - self.__dict__.keys()
            msg = f"OrganizationFacts has no field(s) {', '.join(sorted(unknown))}"
            raise TypeError(msg)
        # A copy of the whole dict, then the changes: twice as fast as filling
        # a fresh instance's dict (benchmark aggregate_load_growth_worst).
        state = self.__dict__.copy()
        state.update(changes)
        copy = object.__new__(OrganizationFacts)
        object.__setattr__(copy, "__dict__", state)
        return copy

    def with_subscription(self, subscription: StandaloneSubscription) -> OrganizationFacts:
        """Add a period to its service; one with the same ``period_start`` as a
        period not yet terminated *replaces* it (a correction of that period)."""
        kept = [
            s
            for s in self.subscriptions
            if not (
                s.service == subscription.service
                and s.period_start == subscription.period_start
                and not s.terminated
            )
        ]
        periods = [*kept, subscription]
        order = {service: i for i, service in enumerate(dict.fromkeys(s.service for s in periods))}
        periods.sort(key=lambda s: (order[s.service], s.period_start))
        return self.updated(subscriptions=tuple(periods))

    def with_service_terminated(self, service: str) -> OrganizationFacts:
        """Every period of ``service`` recorded so far ends with the upgrade."""
        return self.updated(
            subscriptions=tuple(
                replace(s, terminated=True) if s.service == service else s
                for s in self.subscriptions
            )
        )

    def with_admins(self, admins: ServiceAdmins) -> OrganizationFacts:
        # A list, not a generator: every replayed admin change makes one
        # (benchmark aggregate_load_growth_worst).
        others = [a for a in self.service_admins if a.service != admins.service]
        return self.updated(service_admins=(*others, admins))


# ---------------------------------------------------------------------------
# JSON form: used by snapshots, projection rows and the audit tool.
# ---------------------------------------------------------------------------


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def facts_to_dict(facts: OrganizationFacts) -> dict[str, Any]:
    """The facts' JSON form: keys are the dataclasses' fields (``domain.json_form``)."""
    return to_json(facts)


def facts_from_dict(data: Mapping[str, Any]) -> OrganizationFacts:
    """The facts whose JSON form is ``data``; older forms (snapshots are kept)
    read too: a missing key takes its field's default."""
    if "terminated_services" in data:
        # Before plan periods, the terminated *services* were listed; each of
        # their periods (one per service then) was terminated.
        terminated = set(data["terminated_services"])
        data = {
            **data,
            "subscriptions": [
                {"terminated": s["service"] in terminated, **s}
                for s in data.get("subscriptions", ())
            ],
        }
    return from_json(OrganizationFacts, data)


def contract_to_dict(contract: ContractFacts) -> dict[str, Any]:
    pending = contract.pending_renewal
    return {
        "checkout_id": contract.checkout_id,
        "terms": contract.terms.stored(),
        "total": contract.total,
        "charge_id": contract.charge_id,
        "started_at": contract.started_at.isoformat(),
        "anchor": contract.anchor.isoformat(),
        "billing_contact": dict(contract.billing_contact),
        "failed_attempts": contract.failed_attempts,
        "attempts": contract.attempts,
        "pending_renewal": None if pending is None else pending.to_dict(),
        "pending_change": None
        if contract.pending_change is None
        else contract.pending_change.to_dict(),
        "ended_at": _dt(contract.ended_at),
        "end_reason": contract.end_reason,
    }


def contract_from_dict(data: dict[str, Any]) -> ContractFacts:
    """Read the contract's JSON form, including the first form (before SPEC §11),
    which held the first period's terms flat."""
    if "terms" in data:
        terms = ContractTerms.from_stored(data["terms"])
    else:
        terms = ContractTerms(
            billing_period=data["billing_period"],
            seats=data["seats"],
            add_ons=tuple((code, qty) for code, qty in data["add_ons"]),
            current_period_start=_req_dt(data["starts_at"]),
            current_period_end=_req_dt(data["ends_at"]),
            payment_method=PaymentMethod(None, None),
        )
    pending = data.get("pending_renewal")
    started_at = _req_dt(data.get("started_at") or terms.current_period_start.isoformat())
    return ContractFacts(
        checkout_id=data["checkout_id"],
        terms=terms,
        total=data["total"],
        charge_id=data["charge_id"],
        started_at=started_at,
        anchor=_req_dt(data.get("anchor") or started_at.isoformat()),
        billing_contact=dict(data.get("billing_contact") or {}),
        failed_attempts=int(data.get("failed_attempts", 0)),
        attempts=int(data.get("attempts", 0)),
        pending_renewal=None if pending is None else PendingRenewal.from_dict(pending),
        pending_change=None
        if data.get("pending_change") is None
        else PendingChange.from_dict(data["pending_change"]),
        ended_at=_parse_dt(data.get("ended_at")),
        end_reason=data.get("end_reason"),
    )
