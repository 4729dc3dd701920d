"""Mid-term plan changes (SPEC §11): the charge in §5's order, and its reconciliation.

A change with something taking effect at once is bought like the upgrade:

1. record ``ChangeChargeStarted`` — a concurrent second change (or a renewal
   beginning) loses the optimistic version race here and is refused
   (``change_in_progress``) before any charge;
2. charge the card on file with the ``change_id`` as the gateway's
   idempotency key (a total of 0 calls no gateway);
3. allocate the invoice number for that key and record ``BundleChanged``
   with its invoice (and the scheduled part), or ``ChangeChargeFailed``.

A change that only waits for the renewal records ``BundleChangeScheduled``
in step 1 and is done; a retry with its ``Idempotency-Key`` hears that first
answer again (the quote re-priced on the state and at the instant it was
decided, which the pure pricing makes the same quote), nothing recorded twice.
If a process dies between 2 and 3, the intent stays
recorded; :meth:`PlanChanges.reconcile` voids its key at the gateway once it
is older than the grace period (a charge still in flight can then never
succeed) and records what the gateway says happened. A retry with the same
``Idempotency-Key`` resumes the recorded intent with the same gateway key, so
the card is charged at most once whatever happened before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.event_stream import select_organization_notifications
from application.idempotency import IdempotencyKeyReused
from application.invoices.numbers import InvoiceNumbers
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
from application.service import CommandResult, SuiteSubscriptions
from domain import events as ev
from domain.contract import contract_block
from domain.contract_change import ChangeQuote, WantedChange
from domain.errors import DomainError

log = logging.getLogger(__name__)

CHANGED, SCHEDULED, FAILED, PENDING = "changed", "scheduled", "failed", "pending"
#: Failure reasons after which nothing was charged and the same request may
#: begin a new change (the gateway failed). Every other reason is final.
RETRYABLE_FAILURES = frozenset({PaymentGatewayUnavailable.code})
_PAGE = 500
_TOPICS = frozenset(
    get_topic(cls)
    for cls in (
        ev.ChangeChargeStarted,
        ev.BundleChanged,
        ev.ChangeChargeFailed,
        ev.BundleChangeScheduled,
    )
)


@dataclass
class ChangeReconcileReport:
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_in_flight: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "completed": self.completed,
            "failed": self.failed,
            "left_in_flight": self.left_in_flight,
        }


class PlanChanges:
    def __init__(
        self,
        app: SuiteSubscriptions,
        gateway: PaymentGateway,
        numbers: InvoiceNumbers,
        *,
        reconcile_grace: timedelta = RECONCILE_GRACE,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.numbers = numbers
        self.reconcile_grace = reconcile_grace

    def quote(self, organization_id: UUID, wanted: WantedChange) -> dict[str, Any]:
        """Price a change now; records nothing."""
        return self.app.quote_plan_change(organization_id, wanted).to_dict()

    def change(
        self,
        organization_id: UUID,
        *,
        by: str,
        wanted: WantedChange,
        expected_total: int,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """Buy a change of the plan; answer what took effect, the charge and the invoice.

        A key whose change is in the log is answered from the log (the first
        answer was lost, or reconcile finished the change); a key whose
        change was left started resumes it with the same gateway key.
        """
        earlier = None
        if idempotency_key is not None:
            earlier = change_in_log(self.app, organization_id, idempotency_key=idempotency_key)
        if earlier is not None and earlier.outcome == SCHEDULED:
            return self._answer_scheduled(organization_id, earlier, by, wanted, expected_total)
        if earlier is not None:
            if earlier.by != by or earlier.quote["total"] != expected_total:
                raise key_reused(earlier.idempotency_key)
            if earlier.outcome == CHANGED:
                return self._answer(organization_id, earlier)
            if earlier.outcome == FAILED and earlier.reason not in RETRYABLE_FAILURES:
                raise earlier.failure()
        if earlier is not None and earlier.outcome == PENDING:
            change_id, quote, card = earlier.change_id, earlier.quote, earlier.payment_method
        else:
            result, change_id, fresh = self.app.begin_plan_change(
                organization_id,
                by=by,
                wanted=wanted,
                expected_total=expected_total,
                idempotency_key=idempotency_key,
            )
            if not fresh.changes_now:
                return answer(organization_id, change_id, SCHEDULED, fresh.to_dict(), None, result)
            quote = fresh.to_dict()
            contract = self.app.facts(organization_id).contract
            assert contract is not None
            pending = contract.pending_change
            card = None
            if pending is not None and pending.change_id == change_id:
                card = contract.terms.payment_method.reference
        payment = self._pay(organization_id, change_id, quote, card)
        return self._record(organization_id, change_id, quote, payment)

    def _pay(
        self,
        organization_id: UUID,
        change_id: str,
        quote: dict[str, Any],
        payment_method: str | None,
    ) -> dict[str, Any]:
        """Charge the accepted total to the card on file; a total of 0 charges nothing."""
        if quote["total"] == 0:
            return dict(NO_CHARGE)
        if payment_method is None:  # begin_change refuses this; a defect otherwise
            msg = f"change {change_id} has something to pay and no card on file"
            raise RuntimeError(msg)
        try:
            charge = self.gateway.charge(
                change_id,
                quote["total"],
                quote["currency"],
                payment_method,
                f"CRM Plus plan change {change_id} for organization {organization_id}",
            )
        except (PaymentDeclined, PaymentGatewayUnavailable) as refusal:
            # Nothing was charged: close the change so the customer can try again.
            self.app.fail_plan_change(organization_id, change_id=change_id, reason=refusal.code)
            raise
        return {**charge.payment_reference(), "payment_method": payment_method}

    def _record(
        self,
        organization_id: UUID,
        change_id: str,
        quote: dict[str, Any],
        payment: dict[str, Any],
    ) -> dict[str, Any]:
        allocated = self.numbers.allocate(
            change_id,
            prefix=self.app.catalog.issuer.invoice_prefix,
            issued_at=self.app.clock.now(),
        )
        result = self.app.complete_plan_change(
            organization_id,
            change_id=change_id,
            payment=payment,
            invoice_number=allocated.number,
            issued_at=allocated.issued_at,
        )
        if not result.changed:
            # Reconcile recorded this change first: answer it as the log has it.
            recorded = change_in_log(self.app, organization_id, change_id=change_id)
            if recorded is not None and recorded.outcome == CHANGED:
                return self._answer(organization_id, recorded)
        return answer(organization_id, change_id, CHANGED, quote, payment, result, allocated.number)

    def _answer(self, organization_id: UUID, record: ChangeRecord) -> dict[str, Any]:
        """The recorded change's first answer: its terms as that save left them."""
        assert record.version is not None
        facts = self.app.organization_at(organization_id, record.version).facts
        return {
            **record.quote,
            "organization_id": str(organization_id),
            "change_id": record.change_id,
            "status": CHANGED,
            "payment": record.payment,
            "invoice_number": record.invoice_number,
            "contract": contract_block(facts),
            "version": record.version,
            "position": record.position,
        }

    def _answer_scheduled(
        self,
        organization_id: UUID,
        record: ChangeRecord,
        by: str,
        wanted: WantedChange,
        expected_total: int,
    ) -> dict[str, Any]:
        """A change that only waited for the renewal, answered again as it was first.

        ``BundleChangeScheduled`` does not hold the quote: it is priced again on
        the organization just before that event, at that event's instant. The
        request must be the one recorded (same user and total, and it schedules
        what was scheduled), else its key is being reused for another change.
        """
        assert record.version is not None
        assert record.at is not None
        before = self.app.organization_at(organization_id, record.version - 1)
        try:
            quote: ChangeQuote | None = before.quote_change(
                wanted, at=record.at, catalog=self.app.catalog
            )
        except DomainError:
            quote = None  # this body was not even a change on that state
        scheduled = (
            None
            if quote is None or quote.scheduled_change is None
            else quote.scheduled_change.to_dict()
        )
        if (
            quote is None
            or quote.changes_now
            or record.by != by
            or quote.total != expected_total
            or scheduled != record.scheduled_change
        ):
            raise key_reused(record.idempotency_key)
        after = self.app.organization_at(organization_id, record.version)
        return {
            **quote.to_dict(),
            "organization_id": str(organization_id),
            "change_id": record.change_id,
            "status": SCHEDULED,
            "payment": None,
            "invoice_number": None,
            "contract": contract_block(after.facts),
            "version": record.version,
            "position": record.position,
        }

    # -- reconciliation -------------------------------------------------------------

    def reconcile(self) -> ChangeReconcileReport:
        """Finish every change's charge left started longer than the grace period."""
        report = ChangeReconcileReport()
        now = self.app.clock.now()
        for organization_id in self.organizations_with_started_changes():
            contract = self.app.facts(organization_id).contract
            pending = None if contract is None else contract.pending_change
            if pending is None:
                continue
            if now - pending.started_at < self.reconcile_grace:
                report.left_in_flight.append(pending.change_id)
                continue
            quote = pending.quote
            if quote["total"] == 0:
                self._record(organization_id, pending.change_id, quote, dict(NO_CHARGE))
                report.completed.append(pending.change_id)
                continue
            # Void, not just look up: a charge arriving after this decision is refused.
            outcome = self.gateway.void(pending.change_id)
            if outcome.succeeded:
                card = None if contract is None else contract.terms.payment_method.reference
                payment = {**outcome.payment_reference(), "payment_method": card}
                self._record(organization_id, pending.change_id, quote, payment)
                report.completed.append(pending.change_id)
                log.info("reconcile: completed change %s", pending.change_id)
            else:
                reason = (
                    ABANDONED if outcome.status == VOIDED else outcome.decline_code or ABANDONED
                )
                self.app.fail_plan_change(
                    organization_id, change_id=pending.change_id, reason=reason
                )
                report.failed.append(pending.change_id)
                log.info("reconcile: failed change %s (%s)", pending.change_id, reason)
        return report

    def organizations_with_started_changes(self) -> Iterator[UUID]:
        """Organizations whose latest change-charge event is ChangeChargeStarted."""
        started = get_topic(ev.ChangeChargeStarted)
        topics = [started, get_topic(ev.BundleChanged), get_topic(ev.ChangeChargeFailed)]
        latest: dict[UUID, str] = {}
        start = 1
        while True:
            page = self.app.recorder.select_notifications(start=start, limit=_PAGE, topics=topics)
            for notification in page:
                latest[notification.originator_id] = notification.topic  # type: ignore[index]
            if len(page) < _PAGE:
                break
            start = page[-1].id + 1
        for organization_id, topic in latest.items():
            if topic == started:
                yield organization_id


def key_reused(idempotency_key: str | None) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "This Idempotency-Key was already used for a different change; "
        "use a new key for a new request.",
        details={"idempotency_key": idempotency_key},
    )


def answer(
    organization_id: UUID,
    change_id: str,
    status: str,
    quote: dict[str, Any],
    payment: dict[str, Any] | None,
    result: CommandResult,
    invoice_number: str | None = None,
) -> dict[str, Any]:
    """What a change answers: the change as priced, its payment and invoice, the terms now."""
    return {
        **quote,
        "organization_id": str(organization_id),
        "change_id": change_id,
        "status": status,
        "payment": payment,
        "invoice_number": invoice_number,
        "contract": None if result.facts is None else contract_block(result.facts),
        "version": result.version,
        "position": result.position,
    }


@dataclass
class ChangeRecord:
    """One change as the log tells it: what was accepted and how it ended
    (a change that only waits for the renewal is ``SCHEDULED`` from the start)."""

    change_id: str
    by: str
    quote: dict[str, Any]
    payment_method: str | None
    idempotency_key: str | None = None
    outcome: str = PENDING
    payment: dict[str, Any] | None = None
    invoice_number: str | None = None
    reason: str | None = None
    version: int | None = None
    position: int | None = None
    #: A scheduled-only change: when it was decided and what it scheduled.
    at: datetime | None = None
    scheduled_change: dict[str, Any] | None = None

    def settle(self, event: ev.OrganizationEvent, position: int) -> None:
        if isinstance(event, ev.ChangeChargeFailed):
            self.outcome, self.reason = FAILED, event.reason
        elif isinstance(event, ev.BundleChanged):
            self.outcome, self.payment = CHANGED, dict(event.payment)
            self.invoice_number = str(event.invoice["number"])
        if self.outcome == CHANGED:
            # BundleChanged and its BundleChangeScheduled are one save.
            self.version, self.position = event.originator_version, position

    def failure(self) -> PaymentDeclined:
        reason = self.reason or ABANDONED
        code = CHECKOUT_ABANDONED if reason == ABANDONED else reason
        return PaymentDeclined(decline_message(code), code=code, details={"key": self.change_id})


def change_in_log(
    app: SuiteSubscriptions,
    organization_id: UUID,
    *,
    idempotency_key: str | None = None,
    change_id: str | None = None,
) -> ChangeRecord | None:
    """The latest change begun under ``idempotency_key`` (or ``change_id``): a charged
    change from its ``ChangeChargeStarted``, a scheduled-only one from its
    ``BundleChangeScheduled``."""
    found: ChangeRecord | None = None
    after = 0
    while True:
        page = select_organization_notifications(app.recorder, organization_id, after, _PAGE)
        for notification in page:
            if notification.topic not in _TOPICS:
                continue
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, ev.ChangeChargeStarted):
                if event.change_id == change_id or (
                    idempotency_key is not None and event.idempotency_key == idempotency_key
                ):
                    found = ChangeRecord(
                        event.change_id,
                        event.by,
                        dict(event.quote),
                        event.payment_method,
                        event.idempotency_key,
                    )
            elif (
                found is not None
                and isinstance(
                    event, ev.BundleChanged | ev.ChangeChargeFailed | ev.BundleChangeScheduled
                )
                and event.change_id == found.change_id
            ):
                found.settle(event, notification.id)
            elif isinstance(event, ev.BundleChangeScheduled) and (
                event.change_id == change_id
                or (idempotency_key is not None and event.idempotency_key == idempotency_key)
            ):
                # Nothing was charged: the scheduled change is the whole change.
                found = ChangeRecord(
                    event.change_id,
                    event.by,
                    {},
                    None,
                    event.idempotency_key,
                    outcome=SCHEDULED,
                    version=event.originator_version,
                    position=notification.id,
                    at=event.timestamp,
                    scheduled_change=event.scheduled_change,
                )
        if len(page) < _PAGE:
            return found
        after = page[-1].id
