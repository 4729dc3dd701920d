"""Renewals and dunning (SPEC §11): what time alone decides for a paid contract.

At a contract's period end the sweep records what time decided: the end of
a contract set to cancel, or a renewal charged in §5's order of work:

1. record ``RenewalChargeStarted`` — the intent, with exactly what will be
   charged; a second worker racing on the same contract loses the
   optimistic version check here and charges nothing;
2. charge the card on file with the intent's ``renewal_id`` as the
   gateway's idempotency key (a total of 0 calls no gateway);
3. allocate the invoice number for that key (idempotently) and record
   ``BundleRenewed`` with its invoice, or ``RenewalPaymentFailed`` (and,
   after the last attempt of the dunning schedule, ``BundleEnded`` and the
   downgrades).

If a process dies between 2 and 3 the intent stays recorded; once it is
older than the grace period the sweep or ``suitesub reconcile`` drives it
again with the same key: the gateway answers the first charge's outcome, so
the card is charged at most once whatever happened before. A gateway
failure (nothing charged) leaves the intent for the same retry.

*In batches*: the due contracts of one batch are loaded, decided and their
intents recorded in one save (one transaction), charged one by one, and
their outcomes recorded in one save. If a batch save loses a version race
(another worker, a customer's command), every organization of the batch is
settled again on its own, on fresh state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.persistence import RecordConflictError

from application.invoices.numbers import InvoiceNumbers
from application.payments import (
    NO_CHARGE,
    RECONCILE_GRACE,
    PaymentDeclined,
    PaymentGateway,
    PaymentGatewayUnavailable,
)
from application.service import SuiteSubscriptions
from domain.contract import NO_PAYMENT_METHOD, end_due, renewal_due
from domain.facts import BundleState
from domain.organization import Organization

if TYPE_CHECKING:
    from application.bootstrap import Services
    from application.projections.read_model import ReadModel

log = logging.getLogger(__name__)

DEFAULT_RENEWAL_BATCH = 200
RENEWED, FAILED, ENDED, PENDING, UNCHANGED = "renewed", "failed", "ended", "pending", "unchanged"


@dataclass
class RenewalReport:
    #: Organizations whose renewal this run recorded as paid (BundleRenewed).
    renewed: list[str] = field(default_factory=list)
    #: Whose renewal payment failed (RenewalPaymentFailed; maybe BundleEnded too).
    failed: list[str] = field(default_factory=list)
    #: Whose contract ended (cancelled at period end, or the last attempt failed).
    ended: list[str] = field(default_factory=list)
    #: Whose intent is left for a later run (gateway unavailable, or still in flight).
    pending: list[str] = field(default_factory=list)
    #: Due in the views, but the aggregate found nothing to record.
    unchanged: list[str] = field(default_factory=list)
    #: Kept changing under us; the next run tries again.
    conflicted: list[str] = field(default_factory=list)
    more: bool = False

    def add(self, organization_id: str, outcome: str, *, ended: bool = False) -> None:
        {
            RENEWED: self.renewed,
            FAILED: self.failed,
            ENDED: self.ended,
            PENDING: self.pending,
            UNCHANGED: self.unchanged,
        }[outcome].append(organization_id)
        if ended and outcome != ENDED:
            self.ended.append(organization_id)

    def merge(self, other: RenewalReport) -> None:
        for name in ("renewed", "failed", "ended", "pending", "unchanged", "conflicted"):
            getattr(self, name).extend(getattr(other, name))
        self.more = self.more or other.more

    @property
    def recorded(self) -> int:
        """Decisions recorded (renewed, failed, ended)."""
        return len(self.renewed) + len(self.failed) + len(set(self.ended) - set(self.failed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "renewed": self.renewed,
            "failed": self.failed,
            "ended": self.ended,
            "pending": self.pending,
            "unchanged": self.unchanged,
            "conflicted": self.conflicted,
            "more": self.more,
        }


@dataclass
class _Intent:
    """A renewal intent to charge: new in this run, or left by an earlier one."""

    organization: Organization
    renewal_id: str
    charge: dict[str, Any]
    payment_method: str | None
    outcome: str = PENDING
    payment: dict[str, Any] | None = None
    reason: str | None = None
    #: The log position of the outcome's last event, once recorded.
    position: int | None = None


class DueContracts(Protocol):
    """Where the sweep finds the contracts time has made due (the views' directory)."""

    def catch_up(self) -> int: ...

    def contracts_due(
        self, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[tuple[str, datetime]]: ...


class ViewsDue:
    """The views' directory as the sweep's source of due contracts."""

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    def catch_up(self) -> int:
        return self.read_model.catch_up()

    def contracts_due(
        self, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[tuple[str, datetime]]:
        return self.read_model.views.contracts_due(now=now, limit=limit, after=after)


class Renewals:
    def __init__(
        self,
        app: SuiteSubscriptions,
        gateway: PaymentGateway,
        numbers: InvoiceNumbers,
        due: DueContracts | None = None,
        *,
        grace: timedelta = RECONCILE_GRACE,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.numbers = numbers
        self.due = due
        self.grace = grace

    # -- what time decided --------------------------------------------------------------

    def sweep(self, *, batch: int = DEFAULT_RENEWAL_BATCH) -> RenewalReport:
        """One bounded sweep: the contracts due now (oldest first), settled as one batch.

        ``more`` is set when the batch was full and recorded something: more
        may be due (a batch of intents still in flight elsewhere is not "more").
        """
        if batch < 1:
            msg = "batch must be at least 1"
            raise ValueError(msg)
        due = self._due_source()
        due.catch_up()
        found = due.contracts_due(now=self.app.clock.now(), limit=batch)
        report = self.settle([organization_id for organization_id, _at in found])
        report.more = len(found) == batch and report.recorded > 0
        if report.recorded:
            log.info(
                "renewals: %d renewed, %d failed, %d ended",
                len(report.renewed),
                len(report.failed),
                len(report.ended),
            )
        return report

    def sweep_all(self, *, batch: int = DEFAULT_RENEWAL_BATCH) -> RenewalReport:
        """Sweep until nothing more is due (``suitesub renew``)."""
        total = RenewalReport()
        while True:
            report = self.sweep(batch=batch)
            total.merge(report)
            if not report.more:
                total.more = False
                return total

    def reconcile(self, *, batch: int = DEFAULT_RENEWAL_BATCH) -> RenewalReport:
        """Finish every renewal intent older than the grace period (a crash between
        charge and record): charge again with its key — the gateway answers the
        first charge if there was one — and record the outcome."""
        due = self._due_source()
        due.catch_up()
        before = self.app.clock.now() - self.grace
        report = RenewalReport()
        after: tuple[datetime, str] | None = None
        while True:
            found = due.contracts_due(now=before, limit=batch, after=after)
            if not found:
                return report
            in_flight = [
                organization_id
                for organization_id, _at in found
                if self._has_pending_renewal(organization_id)
            ]
            if in_flight:
                report.merge(self.settle(in_flight, only_in_flight=True))
            if len(found) < batch:
                return report
            after = (found[-1][1], found[-1][0])

    def _due_source(self) -> DueContracts:
        if self.due is None:
            msg = "Renewals needs the views to find due contracts"
            raise RuntimeError(msg)
        return self.due

    def _has_pending_renewal(self, organization_id: str) -> bool:
        contract = self.app.facts(UUID(organization_id)).contract
        return contract is not None and contract.pending_renewal is not None

    # -- a card put on file --------------------------------------------------------------

    def change_payment_method(
        self, organization_id: UUID, *, by: str, payment_token: str
    ) -> dict[str, Any]:
        """Save the token at the gateway, record PaymentMethodChanged; while past
        due, charge the renewal at once. Refusals come before any gateway call."""
        organization = self.app.get_organization(organization_id)
        organization.check_contract_rights(by=by, at=self.app.clock.now())
        saved = self.gateway.save_payment_method(payment_token)
        result = self.app.change_payment_method(
            organization_id,
            by=by,
            gateway=self.gateway.name,
            payment_method=saved.reference,
            brand=saved.brand,
            last4=saved.last4,
        )
        answer: dict[str, Any] = {**result.to_dict(), "renewal": None}
        if result.facts is not None and result.facts.bundle_state == BundleState.PAST_DUE:
            outcome, position = self.retry_now(organization_id)
            answer["renewal"] = outcome
            if position is not None:
                answer["position"] = position
            answer["version"] = self.app.get_organization(organization_id).version
        return answer

    # -- the sweep's batch ----------------------------------------------------------

    def settle(
        self, organization_ids: Sequence[str], *, attempts: int = 5, only_in_flight: bool = False
    ) -> RenewalReport:
        """Record what time decided for these organizations (a batch; see the module doc).

        ``only_in_flight``: only finish intents older than the grace period (reconcile).
        """
        report = RenewalReport()
        now = self.app.clock.now()
        organizations = [self.app.get_organization(UUID(i)) for i in organization_ids]
        intents: list[_Intent] = []
        decided: list[Organization] = []
        for organization in organizations:
            outcome = self._decide(organization, now, intents, only_in_flight=only_in_flight)
            if outcome == ENDED:
                decided.append(organization)
            elif outcome == UNCHANGED:
                report.add(str(organization.id), UNCHANGED)
        fresh = [i.organization for i in intents if i.organization.pending_events]
        try:
            self.app.save(*decided, *fresh)
        except RecordConflictError:
            if len(organization_ids) > 1:
                log.info("renewals: a batch lost a race; settling its organizations one by one")
                return self._one_by_one(organization_ids, only_in_flight=only_in_flight)
            if attempts > 1:
                return self.settle(
                    organization_ids, attempts=attempts - 1, only_in_flight=only_in_flight
                )
            report.conflicted.extend(organization_ids)
            return report
        for organization in decided:
            report.add(str(organization.id), ENDED)
        for intent in intents:
            self._charge(intent)
        self._record(intents)
        for intent in intents:
            report.add(
                str(intent.organization.id),
                intent.outcome,
                ended=intent.organization.facts.contract is not None
                and intent.organization.facts.contract.ended_at is not None,
            )
        return report

    def settle_one(self, organization_id: UUID) -> RenewalReport:
        """One organization, on fresh state (a lost version race is decided again)."""
        return self.settle([str(organization_id)])

    def retry_now(self, organization_id: UUID) -> tuple[str, int | None]:
        """Charge a past-due contract at once (a new card was put on file); the
        outcome and the log position of its last event."""
        result, renewal_id, charge = self.app.begin_renewal(organization_id, retry_now=True)
        if charge is None:
            return UNCHANGED, None
        organization = self.app.get_organization(organization_id)
        contract = organization.facts.contract
        assert contract is not None
        assert contract.pending_renewal is not None
        pending = contract.pending_renewal
        intent = _Intent(organization, renewal_id, pending.charge, pending.payment_method)
        self._charge(intent)
        self._record([intent])
        return intent.outcome, intent.position or result.position

    # -- deciding, charging, recording -------------------------------------------------

    def _decide(
        self,
        organization: Organization,
        now: datetime,
        intents: list[_Intent],
        *,
        only_in_flight: bool = False,
    ) -> str:
        facts = organization.facts
        contract = facts.contract
        if contract is not None and contract.pending_renewal is not None:
            pending = contract.pending_renewal
            if now - pending.started_at < self.grace:
                return UNCHANGED  # its charge may still be in flight elsewhere
            intents.append(
                _Intent(
                    organization,
                    pending.renewal_id,
                    pending.charge,
                    pending.payment_method,
                )
            )
            return PENDING
        if only_in_flight:
            return UNCHANGED
        if end_due(facts, now):
            organization.end_at_period_end(at=now, catalog=self.app.catalog)
            return ENDED
        if renewal_due(facts, now):
            assert contract is not None
            renewal_id = f"ren_{uuid4().hex}"
            charge = organization.begin_renewal(
                renewal_id=renewal_id, at=now, catalog=self.app.catalog
            )
            assert charge is not None
            intents.append(
                _Intent(
                    organization,
                    renewal_id,
                    charge.to_dict(),
                    contract.terms.payment_method.reference,
                )
            )
            return PENDING
        return UNCHANGED

    def _charge(self, intent: _Intent) -> None:
        """Charge one intent with its id as the key; set its outcome (nothing recorded)."""
        total = int(intent.charge["total"])
        if total == 0:
            intent.outcome, intent.payment = RENEWED, dict(NO_CHARGE)
            return
        if intent.payment_method is None:
            intent.outcome, intent.reason = FAILED, NO_PAYMENT_METHOD
            return
        try:
            result = self.gateway.charge(
                intent.renewal_id,
                total,
                str(intent.charge["currency"]),
                intent.payment_method,
                f"CRM Plus renewal {intent.renewal_id} for organization {intent.organization.id}",
            )
        except PaymentDeclined as declined:
            intent.outcome, intent.reason = FAILED, declined.code
            return
        except PaymentGatewayUnavailable:
            log.warning("renewals: gateway unavailable for %s; left for later", intent.renewal_id)
            intent.outcome = PENDING
            return
        intent.outcome = RENEWED
        intent.payment = {**result.payment_reference(), "payment_method": intent.payment_method}

    def _record(self, intents: Iterable[_Intent]) -> None:
        """Record each settled intent's outcome: one save for all, or one by one on a race."""
        settled = [i for i in intents if i.outcome in (RENEWED, FAILED)]
        if not settled:
            return
        numbers = self.numbers.allocate_many(
            [i.renewal_id for i in settled if i.outcome == RENEWED],
            prefix=self.app.catalog.issuer.invoice_prefix,
            issued_at=self.app.clock.now(),
        )
        now = self.app.clock.now()
        for intent in settled:
            organization = intent.organization
            if intent.outcome == RENEWED:
                assert intent.payment is not None
                allocated = numbers[intent.renewal_id]
                organization.complete_renewal(
                    renewal_id=intent.renewal_id,
                    payment=intent.payment,
                    invoice_number=allocated.number,
                    issued_at=allocated.issued_at,
                    at=now,
                    catalog=self.app.catalog,
                )
            else:
                organization.fail_renewal(
                    renewal_id=intent.renewal_id,
                    reason=intent.reason or "card_declined",
                    at=now,
                    catalog=self.app.catalog,
                )
        try:
            recordings = self.app.save(*(i.organization for i in settled))
        except RecordConflictError:
            # Someone wrote in between (a reconcile, a command): record each on fresh state.
            for intent in settled:
                self._record_alone(intent, numbers)
            return
        last: dict[UUID, int] = {}
        for recording in recordings:
            last[recording.domain_event.originator_id] = recording.notification.id
        for intent in settled:
            intent.position = last.get(intent.organization.id)

    def _record_alone(self, intent: _Intent, numbers: dict[str, Any]) -> None:
        organization_id = intent.organization.id
        if intent.outcome == RENEWED:
            assert intent.payment is not None
            allocated = numbers[intent.renewal_id]
            result = self.app.complete_renewal(
                organization_id,
                renewal_id=intent.renewal_id,
                payment=intent.payment,
                invoice_number=allocated.number,
                issued_at=allocated.issued_at,
            )
        else:
            result = self.app.fail_renewal(
                organization_id,
                renewal_id=intent.renewal_id,
                reason=intent.reason or "card_declined",
            )
        intent.position = result.position
        intent.organization = self.app.get_organization(organization_id)

    def _one_by_one(
        self, organization_ids: Sequence[str], *, only_in_flight: bool
    ) -> RenewalReport:
        report = RenewalReport()
        for organization_id in organization_ids:
            report.merge(self.settle([organization_id], only_in_flight=only_in_flight))
        return report


def renew_due_contracts(services: Services, *, batch: int = DEFAULT_RENEWAL_BATCH) -> RenewalReport:
    """One bounded sweep of the due contracts (the worker's chore)."""
    return services.renewals.sweep(batch=batch)
