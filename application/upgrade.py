"""The purchase saga of SPEC §5, and the reconciliation of checkouts left started.

Order of work, so that no card is charged twice and no payment is lost:

1. record ``UpgradeCheckoutStarted`` — a concurrent second checkout loses
   the optimistic version race here and is refused (``checkout_in_progress``)
   before any charge;
2. charge the gateway with the checkout id as its idempotency key (a total
   of 0 charges nothing: no gateway is called, SPEC §11);
3. record ``UpgradePurchased`` with every ``StandaloneContractTerminated``
   in one save, or ``UpgradeCheckoutFailed`` with the gateway's reason.

If the process dies between 2 and 3, the checkout stays started;
:meth:`UpgradeCheckouts.reconcile` later settles the key with the gateway and
records the outcome. A checkout younger than the grace period is left alone:
its request may still be in flight. An older one is *voided* at the gateway
before it is recorded as failed, so a request still in flight after all
cannot charge it afterwards (void and charge race on the key; one wins).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.event_stream import select_organization_notifications
from application.idempotency import IdempotencyKeyReused
from application.payments import (
    ABANDONED,
    CHECKOUT_ABANDONED,
    NO_CHARGE,
    RECONCILE_GRACE,
    VOIDED,
    PaymentDeclined,
    PaymentGateway,
    PaymentGatewayUnavailable,
    decline_message,
)
from application.service import SuiteSubscriptions
from domain import events as ev
from domain.quote import Quote, UpgradeRequest

log = logging.getLogger(__name__)

_NOTIFICATION_PAGE = 500


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    request: UpgradeRequest
    billing_contact: dict[str, Any]
    expected_total: int
    payment_token: str


@dataclass
class ReconcileReport:
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_in_flight: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "completed": self.completed,
            "failed": self.failed,
            "left_in_flight": self.left_in_flight,
        }


class UpgradeCheckouts:
    def __init__(
        self,
        app: SuiteSubscriptions,
        gateway: PaymentGateway,
        *,
        reconcile_grace: timedelta = RECONCILE_GRACE,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.reconcile_grace = reconcile_grace

    def purchase(
        self,
        organization_id: UUID,
        *,
        by: str,
        purchase: PurchaseRequest,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """Buy the bundle; answer the receipt (the quote, checkout id, payment).

        An idempotency key answers its checkout's outcome once there is one,
        as the log tells it (SPEC §6, as payment platforms' keys do): a retry
        whose first answer was lost gets the original receipt, or the
        original failure, even after reconcile finished the checkout. A
        retry of a checkout left started (its first request crashed after
        recording UpgradeCheckoutStarted) resumes it: the gateway key is the
        checkout id, so the card is charged at most once whatever happened
        before. Only a gateway failure (nothing charged) lets the same
        request begin a new checkout.
        """
        earlier = None
        if idempotency_key is not None:
            earlier = checkout_in_log(self.app, organization_id, idempotency_key=idempotency_key)
        if earlier is not None:
            if earlier.by != by or earlier.quote.total != purchase.expected_total:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used for a different purchase; "
                    "use a new key for a new request.",
                    details={"idempotency_key": idempotency_key},
                )
            if earlier.outcome == PURCHASED:
                return earlier.receipt(organization_id)
            if earlier.outcome == FAILED and earlier.reason not in RETRYABLE_FAILURES:
                raise earlier.failure()
        if earlier is not None and earlier.outcome == PENDING:
            checkout_id, quote = earlier.checkout_id, earlier.quote
        else:
            _started, checkout_id, fresh_quote = self.app.begin_upgrade_checkout(
                organization_id,
                by=by,
                request=purchase.request,
                billing_contact=purchase.billing_contact,
                expected_total=purchase.expected_total,
                idempotency_key=idempotency_key,
            )
            quote = fresh_quote
        payment = self._pay(organization_id, checkout_id, quote, purchase.payment_token)
        result = self.app.complete_upgrade_checkout(
            organization_id, checkout_id=checkout_id, payment=payment
        )
        if not result.changed:
            # Reconcile recorded this purchase first: answer it as the log has it.
            recorded = checkout_in_log(self.app, organization_id, checkout_id=checkout_id)
            if recorded is not None and recorded.outcome == PURCHASED:
                return recorded.receipt(organization_id)
        numbered = self.app.invoice_numbers.number_for(checkout_id)
        return receipt(
            organization_id,
            checkout_id,
            quote,
            payment,
            result.version,
            result.position,
            invoice_number=None if numbered is None else numbered.number,
        )

    def _pay(
        self, organization_id: UUID, checkout_id: str, quote: Quote, payment_token: str
    ) -> dict[str, str | None]:
        """Charge the accepted quote's total; the payment reference to record.

        A total of 0 charges nothing and calls no gateway (SPEC §11).
        """
        if quote.total == 0:
            return dict(NO_CHARGE)
        try:
            charge = self.gateway.charge(
                checkout_id,
                quote.total,
                quote.currency,
                payment_token,
                f"CRM Plus upgrade {checkout_id} for organization {organization_id}",
            )
        except (PaymentDeclined, PaymentGatewayUnavailable) as refusal:
            # Nothing was charged: close the checkout so the customer can try again.
            self.app.fail_upgrade_checkout(
                organization_id, checkout_id=checkout_id, reason=refusal.code
            )
            raise
        return charge.with_payment_method()

    # -- reconciliation -----------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Finish every checkout left started longer than the grace period."""
        report = ReconcileReport()
        now = self.app.clock.now()
        for organization_id in self.organizations_with_started_checkouts():
            pending = self.app.facts(organization_id).pending_checkout
            if pending is None:
                continue
            if now - pending.started_at < self.reconcile_grace:
                report.left_in_flight.append(pending.checkout_id)
                continue
            if pending.quote.total == 0:
                # Nothing to charge, so nothing can have failed: finish the purchase.
                self.app.complete_upgrade_checkout(
                    organization_id, checkout_id=pending.checkout_id, payment=dict(NO_CHARGE)
                )
                report.completed.append(pending.checkout_id)
                log.info("reconcile: completed checkout %s (no charge)", pending.checkout_id)
                continue
            # Void, not just look up: a charge arriving after this decision
            # must be refused, or money would be taken for a failed checkout.
            outcome = self.gateway.void(pending.checkout_id)
            if outcome.succeeded:
                self.app.complete_upgrade_checkout(
                    organization_id,
                    checkout_id=pending.checkout_id,
                    payment=outcome.with_payment_method(),
                )
                report.completed.append(pending.checkout_id)
                log.info("reconcile: completed checkout %s", pending.checkout_id)
            else:
                reason = (
                    ABANDONED if outcome.status == VOIDED else outcome.decline_code or ABANDONED
                )
                self.app.fail_upgrade_checkout(
                    organization_id, checkout_id=pending.checkout_id, reason=reason
                )
                report.failed.append(pending.checkout_id)
                log.info("reconcile: failed checkout %s (%s)", pending.checkout_id, reason)
        return report

    def organizations_with_started_checkouts(self) -> Iterator[UUID]:
        """Organizations whose latest checkout event is UpgradeCheckoutStarted.

        A scan of the checkout events in the notification log; a projection
        can replace it when the log grows large.
        """
        started_topic = get_topic(ev.UpgradeCheckoutStarted)
        topics = [
            started_topic,
            get_topic(ev.UpgradePurchased),
            get_topic(ev.UpgradeCheckoutFailed),
        ]
        latest: dict[UUID, str] = {}
        start = 1
        while True:
            page = self.app.recorder.select_notifications(
                start=start, limit=_NOTIFICATION_PAGE, topics=topics
            )
            for notification in page:
                latest[notification.originator_id] = notification.topic  # type: ignore[index]
            if len(page) < _NOTIFICATION_PAGE:
                break
            start = page[-1].id + 1
        for organization_id, topic in latest.items():
            if topic == started_topic:
                yield organization_id


def receipt(
    organization_id: UUID,
    checkout_id: str,
    quote: Quote,
    payment: dict[str, Any],
    version: int | None,
    position: int | None,
    *,
    invoice_number: str | None,
) -> dict[str, Any]:
    """What a purchase answers: the accepted quote, the checkout, the payment (SPEC
    §10's four fields; the reusable payment method is the contract's), the
    invoice's number."""
    return {
        **quote.to_dict(),
        "organization_id": str(organization_id),
        "checkout_id": checkout_id,
        "payment": {key: value for key, value in payment.items() if key != "payment_method"},
        "invoice_number": invoice_number,
        "version": version,
        "position": position,
    }


#: Failure reasons that leave nothing final: the gateway failed and nothing
#: was charged, so the same request may begin a new checkout. Every other
#: reason is the key's outcome.
RETRYABLE_FAILURES = frozenset({PaymentGatewayUnavailable.code})
PENDING, PURCHASED, FAILED = "pending", "purchased", "failed"
_CHECKOUT_TOPICS = frozenset(
    get_topic(cls)
    for cls in (
        ev.UpgradeCheckoutStarted,
        ev.UpgradePurchased,
        ev.UpgradeCheckoutFailed,
        ev.StandaloneContractTerminated,
    )
)


@dataclass
class CheckoutRecord:
    """One checkout as the log tells it: what was accepted and how it ended."""

    checkout_id: str
    by: str
    quote: Quote
    outcome: str = PENDING
    payment: dict[str, Any] | None = None
    invoice_number: str | None = None
    reason: str | None = None
    #: The organization's version and log position after the purchase's last
    #: event: what the purchase answered.
    version: int | None = None
    position: int | None = None

    def settle(self, event: ev.OrganizationEvent, position: int) -> None:
        """Fold one later event of this checkout."""
        if isinstance(event, ev.UpgradeCheckoutFailed):
            self.outcome, self.reason = FAILED, event.reason
        elif isinstance(event, ev.UpgradePurchased):
            self.outcome, self.payment = PURCHASED, dict(event.payment)
            self.invoice_number = None if event.invoice is None else event.invoice["number"]
        if self.outcome == PURCHASED:
            # UpgradePurchased and its StandaloneContractTerminated are one save.
            self.version, self.position = event.originator_version, position

    def receipt(self, organization_id: UUID) -> dict[str, Any]:
        assert self.payment is not None
        return receipt(
            organization_id,
            self.checkout_id,
            self.quote,
            self.payment,
            self.version,
            self.position,
            invoice_number=self.invoice_number,
        )

    def failure(self) -> PaymentDeclined:
        # Reconcile records a voided checkout as ``abandoned``; a late charge of
        # it is refused as ``checkout_abandoned``: the retry hears the latter.
        reason = self.reason or ABANDONED
        code = CHECKOUT_ABANDONED if reason == ABANDONED else reason
        # As the gateway refused it: the checkout id is the gateway's key.
        return PaymentDeclined(decline_message(code), code=code, details={"key": self.checkout_id})


def checkout_in_log(
    app: SuiteSubscriptions,
    organization_id: UUID,
    *,
    idempotency_key: str | None = None,
    checkout_id: str | None = None,
) -> CheckoutRecord | None:
    """The latest checkout begun under ``idempotency_key`` (or with ``checkout_id``),
    as the log tells it.

    Read from the organization's stream (only its checkout events are
    decoded), so the outcome is known even when the key's stored answer is
    not: the first request died, or reconcile finished its checkout.
    """
    found: CheckoutRecord | None = None
    after = 0
    while True:
        page = select_organization_notifications(
            app.recorder, organization_id, after, _NOTIFICATION_PAGE
        )
        for notification in page:
            if notification.topic not in _CHECKOUT_TOPICS:
                continue
            event = app.mapper.to_domain_event(notification)
            if not isinstance(event, ev.OrganizationEvent):
                continue
            if isinstance(event, ev.UpgradeCheckoutStarted):
                if event.checkout_id == checkout_id or (
                    idempotency_key is not None and event.idempotency_key == idempotency_key
                ):
                    found = CheckoutRecord(
                        event.checkout_id, event.by, Quote.from_dict(event.quote)
                    )
            elif found is not None and _checkout_id(event) == found.checkout_id:
                found.settle(event, notification.id)
        if len(page) < _NOTIFICATION_PAGE:
            return found
        after = page[-1].id


def _checkout_id(event: ev.OrganizationEvent) -> str | None:
    if isinstance(
        event, ev.UpgradePurchased | ev.UpgradeCheckoutFailed | ev.StandaloneContractTerminated
    ):
        return event.checkout_id
    return None
