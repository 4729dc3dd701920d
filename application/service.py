"""The Suite Subscriptions application: one method per command, plain-data queries.

Commands load the Organization, let it decide (domain errors are raised
before any event exists), and save. A save that loses an optimistic version
race is retried on the fresh state, so the loser gets the answer the rules
give *now* (``trial_already_used``, ``checkout_in_progress``…) instead of a
storage error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import CanMutateAggregate, OriginatorIDError, OriginatorVersionError
from eventsourcing.persistence import JSONTranscoder, RecordConflictError, Transcoder, Transcoding

from application.catalog_loader import load_catalog
from application.errors import ConcurrentModification, OrganizationNotFound
from application.event_stream import select_organization_notifications
from application.ids import random_id
from application.invoices.numbers import InvoiceNumbers
from application.settings import database_settings
from application.sql_tables import tables_for
from application.transcoding import OrjsonDecodingTranscoder
from domain.access_view import access_view
from domain.bundle_state import effective_state, start_trial_refusal, upgrade_refusal
from domain.carry_over import who_may_start_trial
from domain.catalog import Catalog
from domain.clock import Clock
from domain.contract import RenewalCharge
from domain.contract_change import ChangeQuote, WantedChange
from domain.errors import InvalidRequest, StateConflict
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict
from domain.organization import Organization
from domain.quote import Quote, UpgradeRequest
from domain.tamper_evidence import event_data

T = TypeVar("T")
MAX_COMMAND_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What every command answers: the organization's new version and log position."""

    organization_id: str
    version: int
    position: int | None
    changed: bool = True
    #: The organization's facts right after the command, so an answer can
    #: show the new state without loading the aggregate a second time.
    facts: OrganizationFacts | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "version": self.version,
            "position": self.position,
        }


class OrganizationFactsAsDict(Transcoding):
    """Snapshots hold the aggregate's facts; store them in their JSON form."""

    type = OrganizationFacts
    name = "organization_facts"

    def encode(self, obj: OrganizationFacts) -> dict[str, Any]:
        return facts_to_dict(obj)

    def decode(self, data: dict[str, Any]) -> OrganizationFacts:
        return facts_from_dict(data)


def project_organization(
    organization: Organization | None, events: Iterable[OrganizationEvent]
) -> Organization | None:
    """Apply events in order: the library's projector without its per-event
    runtime ``Protocol`` isinstance check, which was a third of a load's time
    (docs/performance.md).

    An event that keeps the library's ``CanMutateAggregate.mutate`` (every
    event after the first) runs that method's steps here, in its order — the
    same id and version checks, ``apply``, then the version and
    ``modified_on`` — without a call of its own per replayed event
    (benchmark aggregate_load_growth_worst). A snapshot or a creation event
    mutates as the library does."""
    for domain_event in events:
        if organization is None or type(domain_event).mutate is not LIBRARY_MUTATE:
            organization = domain_event.mutate(organization)
            continue
        if domain_event.originator_id != organization.id:
            raise OriginatorIDError(domain_event.originator_id, organization.id)
        next_version = organization.version + 1
        if domain_event.originator_version != next_version:
            raise OriginatorVersionError(domain_event.originator_version, next_version)
        domain_event.apply(organization)
        organization.version = domain_event.originator_version
        organization.modified_on = domain_event.timestamp
    return organization


LIBRARY_MUTATE = CanMutateAggregate.mutate


class SuiteSubscriptions(Application[UUID]):
    name = "SuiteSubscriptions"
    # Loading stays flat as a stream grows: read the latest snapshot, then at
    # most this many events less one. 20, not 25: the worst load replays 19
    # events instead of 24 (benchmark aggregate_load_growth_worst; the lead's
    # decision, docs/performance.md).
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Organization: 20}
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {Organization: project_organization}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.catalog = catalog or load_catalog()
        self._invoice_numbers: InvoiceNumbers | None = None

    @property
    def invoice_numbers(self) -> InvoiceNumbers:
        """The invoice number allocator beside the events (made on first use)."""
        if self._invoice_numbers is None:
            self._invoice_numbers = InvoiceNumbers(tables_for(self.recorder))
        return self._invoice_numbers

    def use_invoice_numbers(self, numbers: InvoiceNumbers) -> None:
        """Share the composition root's allocator (``memory://`` tables are per instance)."""
        self._invoice_numbers = numbers

    @classmethod
    def from_database_url(
        cls, url: str | None = None, *, clock: Clock, catalog: Catalog | None = None
    ) -> SuiteSubscriptions:
        """Construct on the store that ``url`` (default ``SUITE_DATABASE_URL``) names."""
        settings = database_settings(url)
        settings.ensure_directory()
        return cls(dict(settings.persistence_env), clock=clock, catalog=catalog)

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON form, decoded with orjson (application/transcoding.py;
        benchmark aggregate_load_growth_worst)."""
        transcoder = OrjsonDecodingTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(OrganizationFactsAsDict())

    # -- commands -------------------------------------------------------------

    def register_organization(
        self,
        *,
        name: str,
        country: str,
        owner_user_id: str,
        organization_id: UUID | None = None,
    ) -> CommandResult:
        organization = Organization.register(
            organization_id=organization_id or uuid4(),
            name=name,
            country=country,
            owner_user_id=owner_user_id,
            at=self.clock.now(),
        )
        return self._save(organization)

    def record_standalone_subscription(
        self,
        organization_id: UUID,
        *,
        service: str,
        seats: int,
        billing_period: str,
        amount_paid: int,
        period_start: date,
        period_end: date,
        super_admin: str,
        admins: list[str],
        by: str | None = None,
    ) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.record_standalone_subscription(
                service=service,
                seats=seats,
                billing_period=billing_period,
                amount_paid=amount_paid,
                period_start=period_start,
                period_end=period_end,
                super_admin=super_admin,
                admins=admins,
                by=by,
                at=self.clock.now(),
                catalog=self.catalog,
            ),
        )

    def change_service_admins(
        self,
        organization_id: UUID,
        *,
        service: str,
        super_admin: str,
        admins: list[str],
        by: str,
        by_operator: bool,
    ) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.change_service_admins(
                service=service,
                super_admin=super_admin,
                admins=admins,
                by=by,
                by_operator=by_operator,
                at=self.clock.now(),
                catalog=self.catalog,
            ),
        )

    def start_trial(self, organization_id: UUID, *, by: str) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.start_trial(by=by, at=self.clock.now(), catalog=self.catalog),
        )

    def extend_trial(self, organization_id: UUID, *, by: str) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.extend_trial(by=by, at=self.clock.now(), catalog=self.catalog),
        )

    def cancel_trial(self, organization_id: UUID, *, by: str) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.cancel_trial(by=by, at=self.clock.now(), catalog=self.catalog),
        )

    def expire_trial(self, organization_id: UUID) -> CommandResult:
        """Record TrialExpired if the trial's end has passed; idempotent."""
        return self._command(organization_id, lambda org: org.expire_trial(at=self.clock.now()))

    def record_due_reminders(self, organization_id: UUID) -> CommandResult:
        """Record ``trial.will_end`` / ``bundle.renewal_upcoming`` when due; idempotent."""
        return self._command(
            organization_id,
            lambda org: org.record_due_reminders(at=self.clock.now(), catalog=self.catalog),
        )

    def begin_upgrade_checkout(
        self,
        organization_id: UUID,
        *,
        by: str,
        request: UpgradeRequest,
        billing_contact: dict[str, Any],
        expected_total: int,
        idempotency_key: str | None = None,
        checkout_id: str | None = None,
    ) -> tuple[CommandResult, str, Quote]:
        """Record UpgradeCheckoutStarted: the step before any card is charged."""
        checkout = checkout_id or random_id("chk_")
        quotes: list[Quote] = []

        def begin(org: Organization) -> None:
            quotes.append(
                org.begin_checkout(
                    checkout_id=checkout,
                    by=by,
                    request=request,
                    billing_contact=billing_contact,
                    expected_total=expected_total,
                    idempotency_key=idempotency_key,
                    at=self.clock.now(),
                    catalog=self.catalog,
                )
            )

        result = self._command(organization_id, begin)
        return result, checkout, quotes[-1]

    def complete_upgrade_checkout(
        self, organization_id: UUID, *, checkout_id: str, payment: dict[str, Any]
    ) -> CommandResult:
        """Record UpgradePurchased (with its invoice) and every StandaloneContractTerminated
        at once.

        The invoice number is allocated for the checkout id just before the
        save, only for a checkout still pending: the charge succeeded (or
        cost nothing), so the purchase is recorded now — or, after a crash,
        by reconcile or a retry, which get the same number back. Every number
        handed out ends on an invoice: no gaps.
        """

        def complete(org: Organization) -> None:
            if not org.checkout_to_complete(checkout_id):
                return  # recorded already (reconcile or a retry was first)
            number = self.invoice_numbers.allocate(
                checkout_id, prefix=self.catalog.issuer.invoice_prefix, issued_at=self.clock.now()
            )
            org.complete_checkout(
                checkout_id=checkout_id,
                payment=payment,
                at=self.clock.now(),
                invoice_number=number.number,
                invoice_issued_at=number.issued_at,
                catalog=self.catalog,
            )

        return self._command(organization_id, complete)

    def fail_upgrade_checkout(
        self, organization_id: UUID, *, checkout_id: str, reason: str
    ) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.fail_checkout(
                checkout_id=checkout_id, reason=reason, at=self.clock.now()
            ),
        )

    # -- the contract (SPEC §11) ---------------------------------------------------

    def begin_renewal(
        self, organization_id: UUID, *, renewal_id: str | None = None, retry_now: bool = False
    ) -> tuple[CommandResult, str, RenewalCharge | None]:
        """Record RenewalChargeStarted if a renewal is due (or ``retry_now`` while past due)."""
        renewal = renewal_id or random_id("ren_")
        charges: list[RenewalCharge | None] = []

        def begin(org: Organization) -> None:
            charges.append(
                org.begin_renewal(
                    renewal_id=renewal,
                    at=self.clock.now(),
                    catalog=self.catalog,
                    retry_now=retry_now,
                )
            )

        result = self._command(organization_id, begin)
        return result, renewal, charges[-1]

    def complete_renewal(
        self,
        organization_id: UUID,
        *,
        renewal_id: str,
        payment: dict[str, Any],
        invoice_number: str,
        issued_at: datetime,
    ) -> CommandResult:
        """Record BundleRenewed (with its invoice) for a renewal intent; idempotent."""
        return self._command(
            organization_id,
            lambda org: org.complete_renewal(
                renewal_id=renewal_id,
                payment=payment,
                invoice_number=invoice_number,
                issued_at=issued_at,
                at=self.clock.now(),
                catalog=self.catalog,
            ),
        )

    def fail_renewal(self, organization_id: UUID, *, renewal_id: str, reason: str) -> CommandResult:
        """Record RenewalPaymentFailed (and BundleEnded after the last attempt); idempotent."""
        return self._command(
            organization_id,
            lambda org: org.fail_renewal(
                renewal_id=renewal_id, reason=reason, at=self.clock.now(), catalog=self.catalog
            ),
        )

    def end_contract_at_period_end(self, organization_id: UUID) -> CommandResult:
        """Record BundleEnded (cancelled) once a cancelled contract's period ended; idempotent."""
        return self._command(
            organization_id,
            lambda org: org.end_at_period_end(at=self.clock.now(), catalog=self.catalog),
        )

    def cancel_contract(self, organization_id: UUID, *, by: str) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.cancel_contract(by=by, at=self.clock.now(), catalog=self.catalog),
        )

    def withdraw_contract_cancellation(self, organization_id: UUID, *, by: str) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.withdraw_cancellation(by=by, at=self.clock.now()),
        )

    def change_payment_method(
        self,
        organization_id: UUID,
        *,
        by: str,
        gateway: str,
        payment_method: str,
        brand: str | None,
        last4: str | None,
    ) -> CommandResult:
        return self._command(
            organization_id,
            lambda org: org.change_payment_method(
                by=by,
                gateway=gateway,
                payment_method=payment_method,
                brand=brand,
                last4=last4,
                at=self.clock.now(),
            ),
        )

    def begin_plan_change(
        self,
        organization_id: UUID,
        *,
        by: str,
        wanted: WantedChange,
        expected_total: int,
        idempotency_key: str | None = None,
        change_id: str | None = None,
    ) -> tuple[CommandResult, str, ChangeQuote]:
        """Record a mid-term change: its charge's intent, or the scheduled change alone."""
        change = change_id or f"chg_{uuid4().hex}"
        quotes: list[ChangeQuote] = []

        def begin(org: Organization) -> None:
            quotes.append(
                org.begin_change(
                    change_id=change,
                    by=by,
                    wanted=wanted,
                    expected_total=expected_total,
                    idempotency_key=idempotency_key,
                    at=self.clock.now(),
                    catalog=self.catalog,
                )
            )

        result = self._command(organization_id, begin)
        return result, change, quotes[-1]

    def complete_plan_change(
        self,
        organization_id: UUID,
        *,
        change_id: str,
        payment: dict[str, Any],
        invoice_number: str,
        issued_at: datetime,
    ) -> CommandResult:
        """Record BundleChanged (with its invoice) for a change's intent; idempotent."""
        return self._command(
            organization_id,
            lambda org: org.complete_change(
                change_id=change_id,
                payment=payment,
                invoice_number=invoice_number,
                issued_at=issued_at,
                at=self.clock.now(),
                catalog=self.catalog,
            ),
        )

    def fail_plan_change(
        self, organization_id: UUID, *, change_id: str, reason: str
    ) -> CommandResult:
        """Record ChangeChargeFailed for a change's intent; idempotent."""
        return self._command(
            organization_id,
            lambda org: org.fail_change(change_id=change_id, reason=reason, at=self.clock.now()),
        )

    # -- queries --------------------------------------------------------------

    def get_organization(self, organization_id: UUID) -> Organization:
        try:
            organization: Organization = self.repository.get(
                organization_id, projector_func=project_organization
            )
        except AggregateNotFoundError:
            raise OrganizationNotFound(organization_id) from None
        return organization

    def organization_at(self, organization_id: UUID, version: int) -> Organization:
        """The organization as it was once its event number ``version`` was recorded
        (a replayed answer is built from the state it was first decided on)."""
        try:
            organization: Organization = self.repository.get(
                organization_id, version=version, projector_func=project_organization
            )
        except AggregateNotFoundError:
            raise OrganizationNotFound(organization_id) from None
        return organization

    def latest_event_at(self) -> datetime | None:
        """The business time of the log's newest event (None while the log is empty)."""
        newest = self.recorder.max_notification_id()
        if not newest:
            return None
        notifications = self.recorder.select_notifications(start=newest, limit=1)
        if not notifications:
            return None
        newest_event = self.mapper.to_domain_event(notifications[0])
        assert isinstance(newest_event, OrganizationEvent)
        return newest_event.timestamp

    def facts(self, organization_id: UUID) -> OrganizationFacts:
        return self.get_organization(organization_id).facts

    def trial_eligibility(self, organization_id: UUID, user_id: str) -> dict[str, Any]:
        """May ``user_id`` start the trial now, and what would carry over?"""
        organization = self.get_organization(organization_id)
        facts = organization.facts
        now = self.clock.now()
        decision = who_may_start_trial(facts, user_id, now.date())
        refusal = start_trial_refusal(facts, now)
        if refusal is None and not decision.allowed:
            refusal = "trial_initiator_cannot_carry_over"
        usable = [
            code
            for code in decision.purchased
            if (s := self.catalog.service(code)) and s.usable_in_bundle_during_trial
        ]
        return {
            "organization_id": str(organization_id),
            "user_id": user_id,
            "eligible": refusal is None,
            "reason": refusal,
            "state": effective_state(facts, now),
            "missing_admin_rights": list(decision.missing_admin_rights),
            "super_admins": dict(decision.super_admins),
            "carried_over": list(decision.purchased),
            "usable_in_bundle": usable,
            "standalone_only": [c for c in decision.purchased if c not in usable],
            "trial_services": [
                c for c in self.catalog.service_codes if c not in decision.purchased
            ],
            "trial_days": self.catalog.bundle.trial_days,
            "version": organization.version,
        }

    def access(self, organization_id: UUID) -> dict[str, Any]:
        """The access view computed from the aggregate (the write model)."""
        position = self.recorder.max_notification_id()
        organization = self.get_organization(organization_id)
        view = access_view(organization.facts, self.catalog, self.clock.now()).to_dict()
        return {"version": organization.version, "position": position or 0, **view}

    def quote(self, organization_id: UUID, request: UpgradeRequest) -> Quote:
        """Price an upgrade now; records nothing."""
        organization = self.get_organization(organization_id)
        refusal = upgrade_refusal(organization.facts, self.clock.now())
        if refusal == "bundle_already_active":
            raise StateConflict("The bundle is already active.", code=refusal)
        return organization.quote(request, at=self.clock.now(), catalog=self.catalog)

    def quote_plan_change(self, organization_id: UUID, wanted: WantedChange) -> ChangeQuote:
        """Price a mid-term change now; records nothing."""
        organization = self.get_organization(organization_id)
        return organization.quote_change(wanted, at=self.clock.now(), catalog=self.catalog)

    def organization_events(
        self, organization_id: UUID, *, after: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        """The organization's stream, oldest first, a page at a time."""
        self.get_organization(organization_id)  # 404 for unknown organizations
        fields: dict[str, list[str]] = {}
        if limit < 1:
            fields["limit"] = ["must be at least 1"]
        if after < 0:
            fields["after"] = ["must not be negative"]
        if fields:
            # SQLite reads a negative LIMIT as "no limit": refuse before any query.
            raise InvalidRequest("The page is invalid.", details={"fields": fields})
        notifications = select_organization_notifications(
            self.recorder, organization_id, after, limit + 1
        )
        page = notifications[:limit]
        events = []
        for notification in page:
            event = self.mapper.to_domain_event(notification)
            events.append({"position": notification.id, **describe_event(event)})
        next_after = page[-1].id if len(notifications) > limit and page else None
        return {"events": events, "next": next_after}

    # -- plumbing ---------------------------------------------------------------

    def _command(
        self, organization_id: UUID, act: Callable[[Organization], object]
    ) -> CommandResult:
        for _attempt in range(MAX_COMMAND_ATTEMPTS):
            organization = self.get_organization(organization_id)
            act(organization)
            try:
                return self._save(organization)
            except RecordConflictError:
                continue  # someone else wrote first: decide again on fresh state
        msg = "The organization changed concurrently; try again."
        raise ConcurrentModification(msg)

    def _save(self, organization: Organization) -> CommandResult:
        recordings = self.save(organization)
        position = recordings[-1].notification.id if recordings else None
        return CommandResult(
            organization_id=str(organization.id),
            version=organization.version,
            position=position,
            changed=bool(recordings),
            facts=organization.facts,
        )

    def bundle_view(self, facts: OrganizationFacts) -> dict[str, Any]:
        """The bundle part of the access view for ``facts``, now."""
        return access_view(facts, self.catalog, self.clock.now()).bundle.to_dict()


def describe_event(event: Any) -> dict[str, Any]:
    """An event as the API, the export and the audit tool show it."""
    assert isinstance(event, OrganizationEvent)
    data = event_data(dict(event.__dict__))
    return {
        "organization_id": str(event.originator_id),
        "version": event.originator_version,
        "type": type(event).__name__,
        "at": event.timestamp.isoformat(),
        "data": data,
        "chain": event.chain,
    }
