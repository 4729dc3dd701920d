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

from application.payments import (
    NO_CHARGE,
    VOIDED,
    PaymentDeclined,
    PaymentGateway,
    PaymentGatewayUnavailable,
)
from application.service import SuiteSubscriptions
from domain import events as ev
from domain.errors import StateConflict
from domain.facts import PendingCheckout
from domain.quote import UpgradeRequest

log = logging.getLogger(__name__)

DEFAULT_RECONCILE_GRACE = timedelta(minutes=10)
ABANDONED = "abandoned"
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
        reconcile_grace: timedelta = DEFAULT_RECONCILE_GRACE,
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

        A retry with the idempotency key of a checkout left started (its first
        request crashed after recording UpgradeCheckoutStarted) resumes that
        checkout: the gateway key is the checkout id, so the card is charged
        at most once whatever happened before.
        """
        try:
            _started, checkout_id, fresh_quote = self.app.begin_upgrade_checkout(
                organization_id,
                by=by,
                request=purchase.request,
                billing_contact=purchase.billing_contact,
                expected_total=purchase.expected_total,
                idempotency_key=idempotency_key,
            )
            quote = fresh_quote.to_dict()
        except StateConflict as conflict:
            pending = self._resumable(conflict, organization_id, by, purchase, idempotency_key)
            if pending is None:
                raise
            checkout_id, quote = pending.checkout_id, pending.quote
        payment = self._pay(organization_id, checkout_id, quote, purchase.payment_token)
        result = self.app.complete_upgrade_checkout(
            organization_id, checkout_id=checkout_id, payment=payment
        )
        return {
            **quote,
            "organization_id": str(organization_id),
            "checkout_id": checkout_id,
            "payment": payment,
            "version": result.version,
            "position": result.position,
        }

    def _pay(
        self, organization_id: UUID, checkout_id: str, quote: dict[str, Any], payment_token: str
    ) -> dict[str, str | None]:
        """Charge the accepted quote's total; the payment reference to record.

        A total of 0 charges nothing and calls no gateway (SPEC §11).
        """
        if quote["total"] == 0:
            return dict(NO_CHARGE)
        try:
            charge = self.gateway.charge(
                checkout_id,
                quote["total"],
                quote["currency"],
                payment_token,
                f"CRM Plus upgrade {checkout_id} for organization {organization_id}",
            )
        except (PaymentDeclined, PaymentGatewayUnavailable) as refusal:
            # Nothing was charged: close the checkout so the customer can try again.
            self.app.fail_upgrade_checkout(
                organization_id, checkout_id=checkout_id, reason=refusal.code
            )
            raise
        return charge.payment_reference()

    def _resumable(
        self,
        conflict: StateConflict,
        organization_id: UUID,
        by: str,
        purchase: PurchaseRequest,
        idempotency_key: str | None,
    ) -> PendingCheckout | None:
        """The started checkout this request is a retry of, if it is one."""
        if conflict.code != "checkout_in_progress" or idempotency_key is None:
            return None
        pending = self.app.facts(organization_id).pending_checkout
        if (
            pending is None
            or pending.idempotency_key != idempotency_key
            or pending.by != by
            or pending.quote.get("total") != purchase.expected_total
        ):
            return None
        return pending

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
            if pending.quote["total"] == 0:
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
                    payment=outcome.payment_reference(),
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
