"""The events of an organization's stream (SPEC §3), past tense, never edited.

Every event's data is plain JSON (strings, integers, lists, objects): what is
stored is exactly what was decided, and the tamper-evidence chain can be
recomputed from the stored bytes. The library's ``timestamp`` is the
business time ``at`` from the service's clock, never the wall clock.

Each event *evolves* :class:`~domain.facts.OrganizationFacts` with a pure
method, which the aggregate, the projections and the replay tool share.

Changing an event's shape: bump ``class_version`` and add an
``upcast_v{n}_v{n+1}`` static method (see docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.facts import (
    BundleState,
    ContractFacts,
    ContractTerms,
    OrganizationFacts,
    PaymentMethod,
    PendingChange,
    PendingCheckout,
    PendingRenewal,
    ScheduledChange,
    ServiceAdmins,
    StandaloneSubscription,
    TrialFacts,
)
from domain.quote import Quote


def issued_invoice(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The invoice an event's data records, or ``None``.

    The one rule of what issues an invoice (SPEC §11): any event of the
    stream whose ``invoice`` field is not null — the upgrade's purchase, a
    renewal, a mid-term change. The invoices view, the export and the replay
    ask this, of the event or of its stored data.
    """
    invoice = data.get("invoice")
    return invoice if isinstance(invoice, dict) else None


class OrganizationEvent(Aggregate.Event):
    """Base of every event on an organization's stream."""

    #: Link of the per-organization hash chain (domain.tamper_evidence).
    chain: str

    @property
    def at(self) -> datetime:
        """The business time of the decision."""
        return self.timestamp

    @property
    def type_name(self) -> str:
        return type(self).__name__

    @property
    def issued_invoice(self) -> dict[str, Any] | None:
        """The invoice this event issued (``Invoice.to_dict()``), or ``None``
        (:func:`issued_invoice`)."""
        return issued_invoice(self.__dict__)

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        raise NotImplementedError

    def apply(self, aggregate: Any) -> None:
        aggregate.facts = self.fold(aggregate.facts)

    def fold(self, facts: OrganizationFacts | None) -> OrganizationFacts:
        """The facts after this event (``facts`` is ``None`` before registration)."""
        assert facts is not None, f"{self.type_name} cannot start a stream"
        evolved = self.evolve(facts)
        if evolved is facts:
            return facts.updated(chain_head=self.chain)
        # ``evolve`` made this copy a moment ago and nobody else holds it: set
        # its link in place rather than copy it once more (replay speed,
        # docs/performance.md).
        evolved.__dict__["chain_head"] = self.chain
        return evolved


class OrganizationRegistered(OrganizationEvent, Aggregate.Created):
    name: str
    country: str
    owner_user_id: str

    def apply(self, aggregate: Any) -> None:
        aggregate.facts = self.fold(None)

    def fold(self, facts: OrganizationFacts | None) -> OrganizationFacts:
        return OrganizationFacts(
            organization_id=str(self.originator_id),
            name=self.name,
            country=self.country,
            owner_user_id=self.owner_user_id,
            registered_at=self.timestamp,
            chain_head=self.chain,
        )


class StandaloneSubscriptionRecorded(OrganizationEvent):
    service: str
    seats: int
    billing_period: str
    amount_paid: int
    period_start: str
    period_end: str
    super_admin: str
    admins: list[str]
    by: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        subscription = StandaloneSubscription(
            service=self.service,
            seats=self.seats,
            billing_period=self.billing_period,
            amount_paid=self.amount_paid,
            period_start=date.fromisoformat(self.period_start),
            period_end=date.fromisoformat(self.period_end),
        )
        admins = ServiceAdmins(self.service, self.super_admin, tuple(self.admins))
        # A period is added to the service's periods (one with the same start
        # replaces it); a period recorded after an upgrade is a new contract.
        return facts.with_subscription(subscription).with_admins(admins)


class ServiceAdminsChanged(OrganizationEvent):
    service: str
    super_admin: str
    admins: list[str]
    by: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.with_admins(ServiceAdmins(self.service, self.super_admin, tuple(self.admins)))


class TrialStarted(OrganizationEvent):
    by: str
    ends_at: str
    carried_over: list[str]
    usable_in_bundle: list[str]
    standalone_only: list[str]
    trial_services: list[str]

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        trial = TrialFacts(
            started_at=self.timestamp,
            started_by=self.by,
            ends_at=datetime.fromisoformat(self.ends_at),
            extensions_used=0,
            carried_over=tuple(self.carried_over),
            usable_in_bundle=tuple(self.usable_in_bundle),
            standalone_only=tuple(self.standalone_only),
            trial_services=tuple(self.trial_services),
        )
        return facts.updated(bundle_state=BundleState.TRIAL, trial=trial)


class TrialExtended(OrganizationEvent):
    by: str
    previous_end: str
    new_end: str
    extension_number: int

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        assert facts.trial is not None
        trial = replace(
            facts.trial,
            ends_at=datetime.fromisoformat(self.new_end),
            extensions_used=self.extension_number,
        )
        return facts.updated(bundle_state=BundleState.TRIAL, trial=trial)


class TrialExpired(OrganizationEvent):
    ends_at: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(bundle_state=BundleState.TRIAL_EXPIRED)


class TrialEndReminderRecorded(OrganizationEvent):
    """The trial ends soon (``trial.will_end``), recorded by the sweep so it replays."""

    ends_at: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(trial_reminded_for=datetime.fromisoformat(self.ends_at))


class RenewalReminderRecorded(OrganizationEvent):
    """A yearly contract renews soon (``bundle.renewal_upcoming``), recorded by the sweep."""

    renews_at: str
    billing_period: str
    seats: int

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(renewal_reminded_for=datetime.fromisoformat(self.renews_at))


class TrialCancelled(OrganizationEvent):
    by: str
    reason: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(
            bundle_state=BundleState.CANCELLED,
            cancelled_at=self.timestamp,
            cancel_reason=self.reason,
        )


class ServiceDowngradedToFree(OrganizationEvent):
    service: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(downgraded_to_free=(*facts.downgraded_to_free, self.service))


def _upcast_credits_v1_v2(credits: list[dict[str, Any]]) -> None:
    """Quote credits before plan periods named no period (one plan per service)."""
    for credit in credits:
        credit.setdefault("period_start", None)
        credit.setdefault("period_end", None)


class UpgradeCheckoutStarted(OrganizationEvent):
    #: v2: each quote credit names its period (``period_start``, ``period_end``).
    class_version = 2
    checkout_id: str
    by: str
    quote: dict[str, Any]
    add_ons: list[dict[str, Any]]
    billing_contact: dict[str, Any]
    idempotency_key: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        _upcast_credits_v1_v2(state["quote"]["credits"])

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        pending = PendingCheckout(
            checkout_id=self.checkout_id,
            by=self.by,
            started_at=self.timestamp,
            idempotency_key=self.idempotency_key,
            quote=Quote.from_dict(self.quote),
            billing_contact=self.billing_contact,
            add_ons=tuple((a["code"], a["quantity"]) for a in self.add_ons),
        )
        return facts.updated(pending_checkout=pending)


class UpgradeCheckoutFailed(OrganizationEvent):
    checkout_id: str
    reason: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.updated(pending_checkout=None)


class UpgradePurchased(OrganizationEvent):
    """The upgrade was paid (or cost nothing) and its contract started.

    ``payment`` also holds ``payment_method`` (SPEC §11) when the gateway's
    first charge returned a reusable one (``pm_…``); later charges use it.

    v2: each credit names its period (``period_start``, ``period_end``).
    v3: ``invoice`` (``domain.invoice.Invoice.to_dict()``, SPEC §11). Purchases
    stored before v3 issued no invoice: they load with ``invoice: None`` and no
    invoice is made up for them (docs/domain.md).
    """

    class_version = 3
    checkout_id: str
    by: str
    currency: str
    billing_period: str
    seats: int
    add_ons: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    subtotal: int
    credits: list[dict[str, Any]]
    credit: int
    tax: int
    total: int
    unapplied_credit: int
    payment: dict[str, Any]
    contract_start: str
    contract_end: str
    billing_contact: dict[str, Any]
    invoice: dict[str, Any] | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        _upcast_credits_v1_v2(state["credits"])

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["invoice"] = None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        start = datetime.fromisoformat(self.contract_start)
        # The organization's credit balance outlives a contract that ended: a
        # second purchase adds its own unapplied credit to what is left.
        carried = 0 if facts.contract is None else facts.contract.terms.credit_balance
        terms = ContractTerms(
            billing_period=self.billing_period,
            seats=self.seats,
            add_ons=tuple((a["code"], a["quantity"]) for a in self.add_ons),
            current_period_start=start,
            current_period_end=datetime.fromisoformat(self.contract_end),
            payment_method=payment_method_of(self.payment),
            credit_balance=carried + self.unapplied_credit,
        )
        contract = ContractFacts(
            checkout_id=self.checkout_id,
            terms=terms,
            total=self.total,
            charge_id=self.payment["charge_id"],
            started_at=start,
            anchor=start,
            billing_contact=dict(self.billing_contact),
        )
        return facts.updated(
            bundle_state=BundleState.ACTIVE,
            pending_checkout=None,
            contract=contract,
        )


def payment_method_of(payment: dict[str, Any], reference: str | None = None) -> PaymentMethod:
    """The card a payment reference names, reusable as ``reference`` (``pm_…``;
    a renewal's payment holds it as ``payment_method``)."""
    return PaymentMethod(
        brand=payment.get("brand"),
        last4=payment.get("last4"),
        reference=reference or payment.get("payment_method"),
        gateway=payment.get("gateway"),
    )


class StandaloneContractTerminated(OrganizationEvent):
    """One per credited service at the upgrade: its periods end, their unused
    days credited. ``amount_credited`` = ``credit_applied`` (taken off the
    upgrade's subtotal, part of its ``credit``) + ``credit_to_balance`` (part of
    its ``unapplied_credit``, opening the credit balance): summed over the
    upgrade's events, the quote's ``credit`` + ``unapplied_credit``.
    """

    class_version = 2
    checkout_id: str
    service: str
    #: The unused days of the service's periods, summed.
    remaining_days: int
    amount_credited: int
    #: ``None`` on events recorded before v2 (the split was not recorded).
    credit_applied: int | None
    credit_to_balance: int | None
    #: Each period credited: the quote's credit entry without ``service``;
    #: ``None`` on events recorded before v2.
    periods: list[dict[str, Any]] | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # v1 recorded one credited plan and not how its credit was split.
        state["credit_applied"] = None
        state["credit_to_balance"] = None
        state["periods"] = None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        return facts.with_service_terminated(self.service)


# -- the contract's life (SPEC §11) ------------------------------------------------


def _contract(facts: OrganizationFacts) -> ContractFacts:
    assert facts.contract is not None, "a contract event needs a contract"
    return facts.contract


class RenewalChargeStarted(OrganizationEvent):
    """The intent of a renewal charge, recorded before the gateway is called (§5's order).

    ``charge`` is :meth:`domain.contract.RenewalCharge.to_dict`: exactly what is
    charged, with ``renewal_id`` as the gateway's idempotency key.
    """

    renewal_id: str
    attempt: int
    scheduled: bool
    charge: dict[str, Any]
    #: The gateway's reusable payment method charged (``None``: no card on file).
    payment_method: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        pending = PendingRenewal(
            renewal_id=self.renewal_id,
            started_at=self.timestamp,
            attempt=self.attempt,
            scheduled=self.scheduled,
            charge=dict(self.charge),
            payment_method=self.payment_method,
        )
        return facts.updated(
            contract=contract.updated(pending_renewal=pending, attempts=self.attempt)
        )


class BundleRenewed(OrganizationEvent):
    """The renewal was paid (or cost nothing): a new period with these terms."""

    renewal_id: str
    attempt: int
    currency: str
    billing_period: str
    seats: int
    add_ons: list[dict[str, Any]]
    period_start: str
    period_end: str
    lines: list[dict[str, Any]]
    subtotal: int
    credit_applied: int
    tax: int
    total: int
    payment: dict[str, Any]
    invoice: dict[str, Any]

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        terms = contract.terms.updated(
            billing_period=self.billing_period,
            seats=self.seats,
            add_ons=tuple((a["code"], a["quantity"]) for a in self.add_ons),
            current_period_start=datetime.fromisoformat(self.period_start),
            current_period_end=datetime.fromisoformat(self.period_end),
            scheduled_change=None,
            credit_balance=contract.terms.credit_balance - self.credit_applied,
            past_due_since=None,
            next_payment_attempt_at=None,
        )
        if self.payment.get("payment_method"):
            terms = terms.updated(payment_method=payment_method_of(self.payment))
        renewed = contract.updated(
            terms=terms,
            total=self.total,
            charge_id=self.payment.get("charge_id"),
            failed_attempts=0,
            attempts=0,
            pending_renewal=None,
        )
        return facts.updated(bundle_state=BundleState.ACTIVE, contract=renewed)


class RenewalPaymentFailed(OrganizationEvent):
    """A renewal charge failed: the contract is past due until paid or ended."""

    renewal_id: str
    attempt: int
    reason: str
    #: The next scheduled attempt; ``None`` after the last one (BundleEnded follows).
    next_attempt_at: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        pending = contract.pending_renewal
        scheduled = pending is None or pending.scheduled
        terms = contract.terms.updated(
            past_due_since=contract.terms.past_due_since or self.timestamp,
            next_payment_attempt_at=None
            if self.next_attempt_at is None
            else datetime.fromisoformat(self.next_attempt_at),
        )
        failed = contract.updated(
            terms=terms,
            failed_attempts=contract.failed_attempts + (1 if scheduled else 0),
            pending_renewal=None,
        )
        return facts.updated(bundle_state=BundleState.PAST_DUE, contract=failed)


class BundleEnded(OrganizationEvent):
    """The contract ended: cancelled at its period's end, or its last payment failed."""

    reason: str
    #: Who cancelled while past due (the end is then at once); ``None`` when time ended it.
    by: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        ended = contract.updated(
            terms=contract.terms.updated(past_due_since=None, next_payment_attempt_at=None),
            pending_renewal=None,
            ended_at=self.timestamp,
            end_reason=self.reason,
        )
        return facts.updated(bundle_state=BundleState.ENDED, contract=ended)


class BundleCancellationScheduled(OrganizationEvent):
    """The contract will end at its period's end (no refund for the running period)."""

    by: str
    effective_at: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        return facts.updated(contract=contract.with_terms(cancel_at_period_end=True))


class BundleCancellationWithdrawn(OrganizationEvent):
    """A scheduled cancellation was taken back before the period's end."""

    by: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        return facts.updated(contract=contract.with_terms(cancel_at_period_end=False))


class PaymentMethodChanged(OrganizationEvent):
    """The card on file was replaced (a token saved at the gateway; no card data)."""

    by: str
    gateway: str
    payment_method: str
    brand: str | None
    last4: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        card = PaymentMethod(self.brand, self.last4, self.payment_method, self.gateway)
        return facts.updated(contract=contract.with_terms(payment_method=card))


# -- mid-term changes (SPEC §11) -----------------------------------------------------


class ChangeChargeStarted(OrganizationEvent):
    """The intent of a mid-term change's charge, recorded before the gateway is called.

    ``quote`` is :meth:`domain.contract_change.ChangeQuote.to_dict`: exactly what
    is charged and what takes effect; ``change_id`` is the gateway's
    idempotency key and the invoice number's key.
    """

    change_id: str
    by: str
    idempotency_key: str | None
    quote: dict[str, Any]
    #: The gateway's reusable payment method to charge (``None``: nothing to charge).
    payment_method: str | None

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        pending = PendingChange(
            change_id=self.change_id,
            by=self.by,
            started_at=self.timestamp,
            idempotency_key=self.idempotency_key,
            quote=dict(self.quote),
        )
        return facts.updated(contract=contract.updated(pending_change=pending))


class ChangeChargeFailed(OrganizationEvent):
    """A change's charge failed (nothing was charged): the terms stay as they were."""

    change_id: str
    reason: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        return facts.updated(contract=contract.updated(pending_change=None))


class BundleChanged(OrganizationEvent):
    """A mid-term change took effect at once: increases pro rata, or a longer
    period starting now; with its charge and its invoice."""

    change_id: str
    by: str
    currency: str
    #: The terms in force from now on.
    billing_period: str
    seats: int
    add_ons: list[dict[str, Any]]
    #: Each line the change altered (``from``, ``to``, ``takes_effect``).
    changes: list[dict[str, Any]]
    #: ``True`` when a new, longer period starts now (``period_start``..``period_end``).
    new_period: bool
    #: The charged period: now to the current period's end, or the new period.
    period_start: str
    period_end: str
    lines: list[dict[str, Any]]
    subtotal: int
    #: The running period's unused part (a switch to a longer period), or ``None``.
    unused_period_credit: dict[str, Any] | None
    period_credit_applied: int
    #: What of the unused period this charge did not use: added to the balance.
    credited_to_balance: int
    #: Taken from the credit balance, before tax.
    credit_applied: int
    tax: int
    total: int
    payment: dict[str, Any]
    invoice: dict[str, Any]

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        terms = contract.terms.updated(
            billing_period=self.billing_period,
            seats=self.seats,
            add_ons=tuple((a["code"], a["quantity"]) for a in self.add_ons),
            credit_balance=contract.terms.credit_balance
            - self.credit_applied
            + self.credited_to_balance,
        )
        anchor = contract.anchor
        if self.new_period:
            start = datetime.fromisoformat(self.period_start)
            terms = terms.updated(
                current_period_start=start,
                current_period_end=datetime.fromisoformat(self.period_end),
            )
            anchor = start  # later periods are counted from the new period's start
        if self.payment.get("payment_method"):
            terms = terms.updated(payment_method=payment_method_of(self.payment))
        changed = contract.updated(
            terms=terms,
            anchor=anchor,
            total=self.total,
            charge_id=self.payment.get("charge_id"),
            pending_change=None,
        )
        return facts.updated(contract=changed)


class BundleChangeScheduled(OrganizationEvent):
    """What takes effect at the next renewal (decreases, yearly → monthly); it
    replaces any earlier scheduled change (``None``: nothing is scheduled any more)."""

    change_id: str
    by: str
    idempotency_key: str | None
    scheduled_change: dict[str, Any] | None
    #: The scheduled change this one replaces, or ``None``.
    replaces: dict[str, Any] | None
    #: The renewal it takes effect at (the current period's end).
    takes_effect_at: str

    def evolve(self, facts: OrganizationFacts) -> OrganizationFacts:
        contract = _contract(facts)
        change = (
            None
            if self.scheduled_change is None
            else ScheduledChange.from_dict(self.scheduled_change)
        )
        return facts.updated(contract=contract.with_terms(scheduled_change=change))


EVENT_CLASSES: tuple[type[OrganizationEvent], ...] = (
    OrganizationRegistered,
    StandaloneSubscriptionRecorded,
    ServiceAdminsChanged,
    TrialStarted,
    TrialExtended,
    TrialExpired,
    TrialCancelled,
    ServiceDowngradedToFree,
    UpgradeCheckoutStarted,
    UpgradeCheckoutFailed,
    UpgradePurchased,
    StandaloneContractTerminated,
    TrialEndReminderRecorded,
    RenewalReminderRecorded,
    RenewalChargeStarted,
    BundleRenewed,
    RenewalPaymentFailed,
    BundleEnded,
    BundleCancellationScheduled,
    BundleCancellationWithdrawn,
    PaymentMethodChanged,
    ChangeChargeStarted,
    ChangeChargeFailed,
    BundleChanged,
    BundleChangeScheduled,
)

EVENTS_BY_NAME = {cls.__name__: cls for cls in EVENT_CLASSES}

__all__ = ["EVENTS_BY_NAME", "EVENT_CLASSES", "OrganizationEvent"]
