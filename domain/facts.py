"""The organization's state as plain, immutable facts.

The aggregate holds exactly one :class:`OrganizationFacts`; every event
*evolves* it into the next one. Because the facts are a pure value with a
JSON form, the same rules (access view, carry-over, quote) run unchanged in
the aggregate, in the projections (which store the facts in their rows) and
in the audit replay tool (which folds events from nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

GENESIS_LINK = "0" * 64


class BundleState:
    """The bundle states of SPEC §4 (``trial_expired`` is also reached by time)."""

    NONE = "none"
    TRIAL = "trial"
    TRIAL_EXPIRED = "trial_expired"
    CANCELLED = "cancelled"
    ACTIVE = "active"

    ALL = (NONE, TRIAL, TRIAL_EXPIRED, CANCELLED, ACTIVE)


@dataclass(frozen=True, slots=True)
class ServiceAdmins:
    service: str
    super_admin: str
    admins: tuple[str, ...]

    def has_admin_rights(self, user_id: str) -> bool:
        return user_id == self.super_admin or user_id in self.admins


@dataclass(frozen=True, slots=True)
class StandaloneSubscription:
    """A paid standalone plan. Its period is the half-open ``[start, end)``."""

    service: str
    seats: int
    billing_period: str
    amount_paid: int
    period_start: date
    period_end: date

    def has_ended(self, on: date) -> bool:
        return on >= self.period_end

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
    quote: dict[str, Any]
    billing_contact: dict[str, Any]
    add_ons: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ContractFacts:
    checkout_id: str
    billing_period: str
    seats: int
    add_ons: tuple[tuple[str, int], ...]
    starts_at: datetime
    ends_at: datetime
    total: int
    #: ``None`` when nothing was charged (a total of 0).
    charge_id: str | None


# Not ``slots``: :meth:`OrganizationFacts.updated` copies the instance dict,
# which is what makes replaying an event cheap (docs/performance.md).
@dataclass(frozen=True)
class OrganizationFacts:
    organization_id: str
    name: str
    country: str
    owner_user_id: str
    registered_at: datetime
    #: The organization's standalone plans, one per service (latest recorded).
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
    contract: ContractFacts | None = None
    terminated_services: tuple[str, ...] = ()
    #: The trial end that ``trial.will_end`` was recorded for (one reminder per end).
    trial_reminded_for: datetime | None = None
    #: The renewal that ``bundle.renewal_upcoming`` was recorded for.
    renewal_reminded_for: datetime | None = None
    chain_head: str = field(default=GENESIS_LINK)

    @property
    def trial_used(self) -> bool:
        return self.trial is not None

    def subscription(self, service: str) -> StandaloneSubscription | None:
        return next((s for s in self.subscriptions if s.service == service), None)

    def admins_of(self, service: str) -> ServiceAdmins | None:
        return next((a for a in self.service_admins if a.service == service), None)

    def purchased_services(self, on: date) -> tuple[str, ...]:
        """Services with a paid standalone plan whose period has not ended (P).

        Standalone plans end when the bundle is bought (their contracts are
        terminated and credited), so an active bundle has no P.
        """
        return tuple(
            s.service
            for s in self.subscriptions
            if not s.has_ended(on) and s.service not in self.terminated_services
        )

    def running_subscriptions(self, on: date) -> tuple[StandaloneSubscription, ...]:
        purchased = set(self.purchased_services(on))
        return tuple(s for s in self.subscriptions if s.service in purchased)

    def updated(self, **changes: Any) -> OrganizationFacts:
        """A copy with ``changes``, like :func:`dataclasses.replace` but several
        times faster: every replayed event makes one, on every load, rebuild
        and replay."""
        unknown = changes.keys() - self.__dict__.keys()
        if unknown:
            msg = f"OrganizationFacts has no field(s) {', '.join(sorted(unknown))}"
            raise TypeError(msg)
        copy = object.__new__(OrganizationFacts)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def with_subscription(self, subscription: StandaloneSubscription) -> OrganizationFacts:
        others = tuple(s for s in self.subscriptions if s.service != subscription.service)
        return self.updated(subscriptions=(*others, subscription))

    def with_admins(self, admins: ServiceAdmins) -> OrganizationFacts:
        others = tuple(a for a in self.service_admins if a.service != admins.service)
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
    trial = facts.trial
    pending = facts.pending_checkout
    contract = facts.contract
    return {
        "organization_id": facts.organization_id,
        "name": facts.name,
        "country": facts.country,
        "owner_user_id": facts.owner_user_id,
        "registered_at": facts.registered_at.isoformat(),
        "subscriptions": [
            {
                "service": s.service,
                "seats": s.seats,
                "billing_period": s.billing_period,
                "amount_paid": s.amount_paid,
                "period_start": s.period_start.isoformat(),
                "period_end": s.period_end.isoformat(),
            }
            for s in facts.subscriptions
        ],
        "service_admins": [
            {"service": a.service, "super_admin": a.super_admin, "admins": list(a.admins)}
            for a in facts.service_admins
        ],
        "bundle_state": facts.bundle_state,
        "trial": None
        if trial is None
        else {
            "started_at": trial.started_at.isoformat(),
            "started_by": trial.started_by,
            "ends_at": trial.ends_at.isoformat(),
            "extensions_used": trial.extensions_used,
            "carried_over": list(trial.carried_over),
            "usable_in_bundle": list(trial.usable_in_bundle),
            "standalone_only": list(trial.standalone_only),
            "trial_services": list(trial.trial_services),
        },
        "cancelled_at": _dt(facts.cancelled_at),
        "cancel_reason": facts.cancel_reason,
        "downgraded_to_free": list(facts.downgraded_to_free),
        "pending_checkout": None
        if pending is None
        else {
            "checkout_id": pending.checkout_id,
            "by": pending.by,
            "started_at": pending.started_at.isoformat(),
            "idempotency_key": pending.idempotency_key,
            "quote": pending.quote,
            "billing_contact": pending.billing_contact,
            "add_ons": [[code, qty] for code, qty in pending.add_ons],
        },
        "contract": None
        if contract is None
        else {
            "checkout_id": contract.checkout_id,
            "billing_period": contract.billing_period,
            "seats": contract.seats,
            "add_ons": [[code, qty] for code, qty in contract.add_ons],
            "starts_at": contract.starts_at.isoformat(),
            "ends_at": contract.ends_at.isoformat(),
            "total": contract.total,
            "charge_id": contract.charge_id,
        },
        "terminated_services": list(facts.terminated_services),
        "trial_reminded_for": _dt(facts.trial_reminded_for),
        "renewal_reminded_for": _dt(facts.renewal_reminded_for),
        "chain_head": facts.chain_head,
    }


def facts_from_dict(data: dict[str, Any]) -> OrganizationFacts:
    trial = data.get("trial")
    pending = data.get("pending_checkout")
    contract = data.get("contract")
    return OrganizationFacts(
        organization_id=data["organization_id"],
        name=data["name"],
        country=data["country"],
        owner_user_id=data["owner_user_id"],
        registered_at=_req_dt(data["registered_at"]),
        subscriptions=tuple(
            StandaloneSubscription(
                service=s["service"],
                seats=s["seats"],
                billing_period=s["billing_period"],
                amount_paid=s["amount_paid"],
                period_start=date.fromisoformat(s["period_start"]),
                period_end=date.fromisoformat(s["period_end"]),
            )
            for s in data.get("subscriptions", [])
        ),
        service_admins=tuple(
            ServiceAdmins(
                service=a["service"], super_admin=a["super_admin"], admins=tuple(a["admins"])
            )
            for a in data.get("service_admins", [])
        ),
        bundle_state=data["bundle_state"],
        trial=None
        if trial is None
        else TrialFacts(
            started_at=_req_dt(trial["started_at"]),
            started_by=trial["started_by"],
            ends_at=_req_dt(trial["ends_at"]),
            extensions_used=trial["extensions_used"],
            carried_over=tuple(trial["carried_over"]),
            usable_in_bundle=tuple(trial["usable_in_bundle"]),
            standalone_only=tuple(trial["standalone_only"]),
            trial_services=tuple(trial["trial_services"]),
        ),
        cancelled_at=_parse_dt(data.get("cancelled_at")),
        cancel_reason=data.get("cancel_reason"),
        downgraded_to_free=tuple(data.get("downgraded_to_free", [])),
        pending_checkout=None
        if pending is None
        else PendingCheckout(
            checkout_id=pending["checkout_id"],
            by=pending["by"],
            started_at=_req_dt(pending["started_at"]),
            idempotency_key=pending["idempotency_key"],
            quote=pending["quote"],
            billing_contact=pending["billing_contact"],
            add_ons=tuple((code, qty) for code, qty in pending["add_ons"]),
        ),
        contract=None
        if contract is None
        else ContractFacts(
            checkout_id=contract["checkout_id"],
            billing_period=contract["billing_period"],
            seats=contract["seats"],
            add_ons=tuple((code, qty) for code, qty in contract["add_ons"]),
            starts_at=_req_dt(contract["starts_at"]),
            ends_at=_req_dt(contract["ends_at"]),
            total=contract["total"],
            charge_id=contract["charge_id"],
        ),
        terminated_services=tuple(data.get("terminated_services", [])),
        trial_reminded_for=_parse_dt(data.get("trial_reminded_for")),
        renewal_reminded_for=_parse_dt(data.get("renewal_reminded_for")),
        chain_head=data.get("chain_head", GENESIS_LINK),
    )
