"""The Organization aggregate: one per organization, one stream of decisions.

Each command method checks the rules first (raising a :class:`DomainError`
before any event exists) and then triggers exactly the events of SPEC §3.
Every command first normalises its business time ``at`` to UTC: stored times
are UTC (SPEC §7) and a "day" (plan periods, credits) is a UTC calendar day,
whatever zone the caller's clock speaks.
All state lives in ``self.facts``; events evolve it (see ``domain.events``).
Text a caller chooses (names, user ids, the billing contact, the idempotency
key) is refused when it holds a card number (``domain.card_numbers``), so no
path can record one in the immutable log.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain import events as ev
from domain.bundle_state import (
    admins_change_refusal,
    cancellation_refusal,
    contract_cancellation_refusal,
    effective_state,
    extension_refusal,
    payment_method_refusal,
    plan_change_refusal,
    standalone_plan_refusal,
    start_trial_refusal,
    upgrade_refusal,
    withdrawal_refusal,
)
from domain.card_numbers import refuse_card_numbers
from domain.carry_over import CarryOverDecision, may_act_on_bundle, who_may_start_trial
from domain.catalog import BILLING_PERIODS, Catalog
from domain.clock import ensure_utc
from domain.contract import (
    ENDED_CANCELLED,
    ENDED_PAYMENT_FAILED,
    RenewalCharge,
    end_due,
    next_attempt_at,
    renewal_charge,
    renewal_due,
)
from domain.contract_change import NOW, ChangeQuote, WantedChange, price_change
from domain.countries import is_iso_country
from domain.errors import InvalidRequest, NotAllowed, NotFound, StateConflict
from domain.facts import (
    GENESIS_LINK,
    BundleState,
    ContractFacts,
    OrganizationFacts,
    PendingCheckout,
    PendingRenewal,
)
from domain.invoice import (
    InvoiceIssuer,
    InvoicePayment,
    balance_credit_line,
    build_invoice,
    period_line,
    upgrade_invoice,
)
from domain.json_form import to_json
from domain.quote import Quote, UpgradeRequest, compute_quote, service_credits
from domain.reminders import TRIAL_WILL_END, due_reminders
from domain.tamper_evidence import chain_link, event_data, require_plain_json
from domain.text import refuse_unsafe_text

MAX_NAME_LENGTH = 200
#: The most seats one standalone plan may record (a sanity bound on the input).
MAX_STANDALONE_SEATS = 1_000_000


class Organization(Aggregate):
    facts: OrganizationFacts

    def __init__(self) -> None:
        """The registration event sets ``facts`` (see OrganizationRegistered)."""

    # -- construction ------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        organization_id: UUID,
        name: str,
        country: str,
        owner_user_id: str,
        at: datetime,
    ) -> Organization:
        refuse_card_numbers({"name": name, "owner_user_id": owner_user_id})
        # Before the name is trimmed: Python counts some controls as white space.
        refuse_unsafe_text({"name": name, "country": country, "owner_user_id": owner_user_id})
        name = name.strip()
        errors: dict[str, list[str]] = {}
        if not name or len(name) > MAX_NAME_LENGTH:
            errors["name"] = [f"must be 1 to {MAX_NAME_LENGTH} characters"]
        if not _is_alpha2(country):
            errors["country"] = ["must be an ISO 3166-1 alpha-2 code such as 'JP'"]
        if not owner_user_id.strip():
            errors["owner_user_id"] = ["must not be empty"]
        if errors:
            raise InvalidRequest("The organization is invalid.", details={"fields": errors})
        at = ensure_utc(at)
        data: dict[str, Any] = {
            "name": name,
            "country": country,
            "owner_user_id": owner_user_id,
        }
        link = chain_link(
            GENESIS_LINK,
            str(organization_id),
            cls.INITIAL_VERSION,
            ev.OrganizationRegistered.__name__,
            at,
            data,
        )
        # What the library's Aggregate creation does, through its public API.
        fields: dict[str, Any] = {
            "originator_topic": get_topic(cls),
            "originator_id": organization_id,
            "originator_version": cls.INITIAL_VERSION,
            "timestamp": at,
            "chain": link,
            **data,
        }
        registered = ev.OrganizationRegistered(**fields)
        organization = cast(Organization, registered.mutate(None))
        organization.pending_events.append(registered)
        return organization

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Add the hash-chain link before the event exists, so it is stored with it."""
        at = ensure_utc(kwargs["timestamp"])
        kwargs["timestamp"] = at
        data = event_data(kwargs)
        require_plain_json(data)
        # Every event, whatever command made it: no text the log cannot hold.
        refuse_unsafe_text(data)
        kwargs["chain"] = chain_link(
            self.facts.chain_head,
            str(self.id),
            self.version + 1,
            event_class.__name__,
            at,
            data,
        )
        super().trigger_event(event_class, **kwargs)

    # -- standalone plans and admins ----------------------------------------

    def record_standalone_subscription(
        self,
        *,
        service: str,
        seats: int,
        billing_period: str,
        amount_paid: int,
        period_start: date,
        period_end: date,
        super_admin: str,
        admins: list[str],
        by: str | None,
        at: datetime,
        catalog: Catalog,
    ) -> None:
        refuse_card_numbers({"super_admin": super_admin, "admins": admins, "by": by})
        at = ensure_utc(at)
        self._require_service(service, catalog)
        errors: dict[str, list[str]] = {}
        if seats < 1:
            errors["seats"] = ["must be at least 1"]
        elif seats > MAX_STANDALONE_SEATS:
            errors["seats"] = [f"must be at most {MAX_STANDALONE_SEATS}"]
        if billing_period not in BILLING_PERIODS:
            errors["billing_period"] = [f"must be one of {', '.join(BILLING_PERIODS)}"]
        if amount_paid < 0:
            errors["amount_paid"] = ["must not be negative"]
        if period_end <= period_start:
            errors["period_end"] = ["must be after period_start"]
        if not super_admin.strip():
            errors["super_admin"] = ["must not be empty"]
        if errors:
            raise InvalidRequest(
                "The standalone subscription is invalid.", details={"fields": errors}
            )
        refusal = standalone_plan_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_STANDALONE_PLAN_MESSAGES[refusal], code=refusal)
        self.trigger_event(
            ev.StandaloneSubscriptionRecorded,
            timestamp=at,
            service=service,
            seats=seats,
            billing_period=billing_period,
            amount_paid=amount_paid,
            period_start=period_start.isoformat(),
            period_end=period_end.isoformat(),
            super_admin=super_admin,
            admins=_unique(admins),
            by=by,
        )

    def change_service_admins(
        self,
        *,
        service: str,
        super_admin: str,
        admins: list[str],
        by: str,
        by_operator: bool,
        at: datetime,
        catalog: Catalog,
    ) -> None:
        refuse_card_numbers({"super_admin": super_admin, "admins": admins, "by": by})
        at = ensure_utc(at)
        self._require_service(service, catalog)
        if not super_admin.strip():
            raise InvalidRequest(
                "The super admin is invalid.",
                details={"fields": {"super_admin": ["must not be empty"]}},
            )
        current = self.facts.admins_of(service)
        if not by_operator and (current is None or current.super_admin != by):
            raise NotAllowed(
                f"Only the super admin of {service} or an operator may change its admins.",
                code="not_service_super_admin",
                details={
                    "service": service,
                    "super_admin": None if current is None else current.super_admin,
                },
            )
        refusal = admins_change_refusal(self.facts)
        if refusal is not None:
            raise StateConflict(
                "An upgrade checkout is in progress; change the admins once it completes or fails.",
                code=refusal,
            )
        self.trigger_event(
            ev.ServiceAdminsChanged,
            timestamp=at,
            service=service,
            super_admin=super_admin,
            admins=_unique(admins),
            by=by,
        )

    # -- the trial ------------------------------------------------------------

    def start_trial(self, *, by: str, at: datetime, catalog: Catalog) -> None:
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = start_trial_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_CONFLICT_MESSAGES[refusal], code=refusal)
        decision = who_may_start_trial(self.facts, by, at.date())
        if not decision.allowed:
            raise _carry_over_refusal(decision, "trial_initiator_cannot_carry_over")
        purchased = decision.purchased
        usable = [
            code
            for code in purchased
            if (service := catalog.service(code)) and service.usable_in_bundle_during_trial
        ]
        self.trigger_event(
            ev.TrialStarted,
            timestamp=at,
            by=by,
            ends_at=(at + timedelta(days=catalog.bundle.trial_days)).isoformat(),
            carried_over=list(purchased),
            usable_in_bundle=usable,
            standalone_only=[code for code in purchased if code not in usable],
            trial_services=[c for c in catalog.service_codes if c not in purchased],
        )

    def extend_trial(self, *, by: str, at: datetime, catalog: Catalog) -> None:
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = extension_refusal(self.facts, catalog.bundle, at)
        if refusal is not None:
            raise StateConflict(
                _CONFLICT_MESSAGES[refusal], code=refusal, details=self._trial_details()
            )
        self._require_bundle_rights(by, at)
        trial = self.facts.trial
        assert trial is not None
        new_end = max(trial.ends_at, at) + timedelta(days=catalog.bundle.extension_days)
        self.trigger_event(
            ev.TrialExtended,
            timestamp=at,
            by=by,
            previous_end=trial.ends_at.isoformat(),
            new_end=new_end.isoformat(),
            extension_number=trial.extensions_used + 1,
        )

    def cancel_trial(self, *, by: str, at: datetime, catalog: Catalog) -> None:
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = cancellation_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_CONFLICT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)
        during_trial = effective_state(self.facts, at) == BundleState.TRIAL
        purchased = set(self.facts.purchased_services(at.date()))
        self.trigger_event(
            ev.TrialCancelled,
            timestamp=at,
            by=by,
            reason="user_request" if during_trial else "after_expiry",
        )
        for code in catalog.service_codes:
            if code not in purchased:
                self.trigger_event(ev.ServiceDowngradedToFree, timestamp=at, service=code)

    def expire_trial(self, *, at: datetime) -> bool:
        """Record that the trial's end passed with no decision; ``False`` if not due."""
        at = ensure_utc(at)
        trial = self.facts.trial
        if self.facts.bundle_state != BundleState.TRIAL or trial is None:
            return False
        if at < trial.ends_at:
            return False
        self.trigger_event(ev.TrialExpired, timestamp=at, ends_at=trial.ends_at.isoformat())
        return True

    def record_due_reminders(self, *, at: datetime, catalog: Catalog) -> bool:
        """Record the reminders time has made due (SPEC §12); ``False`` if none."""
        at = ensure_utc(at)
        due = due_reminders(self.facts, catalog.bundle, at)
        for reminder in due:
            if reminder.kind == TRIAL_WILL_END:
                self.trigger_event(
                    ev.TrialEndReminderRecorded,
                    timestamp=at,
                    ends_at=reminder.announces.isoformat(),
                )
            else:
                contract = self.facts.contract
                assert contract is not None
                self.trigger_event(
                    ev.RenewalReminderRecorded,
                    timestamp=at,
                    renews_at=reminder.announces.isoformat(),
                    billing_period=contract.billing_period,
                    seats=contract.seats,
                )
        return bool(due)

    # -- the upgrade -------------------------------------------------------------

    def quote(self, request: UpgradeRequest, *, at: datetime, catalog: Catalog) -> Quote:
        # An unknown add-on code is named in the refusal: never a card number.
        refuse_card_numbers({"add_ons": [{"code": a.code} for a in request.add_ons]})
        at = ensure_utc(at)
        running = self.facts.running_subscriptions(at.date())
        return compute_quote(catalog.bundle, request, running, at)

    def begin_checkout(
        self,
        *,
        checkout_id: str,
        by: str,
        request: UpgradeRequest,
        billing_contact: dict[str, Any],
        expected_total: int,
        idempotency_key: str | None,
        at: datetime,
        catalog: Catalog,
    ) -> Quote:
        refuse_card_numbers(
            {"by": by, "billing_contact": billing_contact, "idempotency_key": idempotency_key}
        )
        at = ensure_utc(at)
        refusal = upgrade_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_CONFLICT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)
        quote = self.quote(request, at=at, catalog=catalog)
        if quote.total != expected_total:
            raise StateConflict(
                "The price changed since the quote was shown; confirm the new total.",
                code="quote_changed",
                details={"expected_total": expected_total, "quote": quote.to_dict()},
            )
        self.trigger_event(
            ev.UpgradeCheckoutStarted,
            timestamp=at,
            checkout_id=checkout_id,
            by=by,
            quote=quote.to_dict(),
            add_ons=[{"code": a.code, "quantity": a.quantity} for a in request.add_ons],
            billing_contact=dict(billing_contact),
            idempotency_key=idempotency_key,
        )
        return quote

    def checkout_to_complete(self, checkout_id: str) -> bool:
        """Whether ``checkout_id`` is pending (``False``: its purchase is recorded already).

        Raises ``checkout_not_pending`` for any other checkout. The charging
        code asks first, so it numbers an invoice only for a purchase it records.
        """
        if self._already_purchased(checkout_id):
            return False
        self._require_pending(checkout_id)
        return True

    def complete_checkout(
        self,
        *,
        checkout_id: str,
        payment: dict[str, Any],
        at: datetime,
        invoice_number: str,
        invoice_issued_at: datetime,
        catalog: Catalog,
    ) -> bool:
        """Record the purchase the gateway confirmed, with its invoice (SPEC §11);
        ``False`` if already recorded.

        ``invoice_number`` was allocated for this checkout at ``invoice_issued_at``
        (a retry or reconcile gets the same number and time back). ``payment``
        may hold the reusable ``payment_method`` (``pm_…``) a first charge returns.
        """
        at = ensure_utc(at)
        payment = {k: v for k, v in payment.items() if k != "payment_method" or v is not None}
        if not self.checkout_to_complete(checkout_id):
            return False
        pending = self._require_pending(checkout_id)
        quote = pending.quote
        stored = quote.to_dict()
        invoice = upgrade_invoice(
            number=invoice_number,
            issued_at=invoice_issued_at,
            checkout_id=checkout_id,
            quote=stored,
            billing_contact=pending.billing_contact,
            payment=payment,
            catalog=catalog,
        )
        self.trigger_event(
            ev.UpgradePurchased,
            timestamp=at,
            checkout_id=checkout_id,
            by=pending.by,
            currency=quote.currency,
            billing_period=quote.billing_period,
            seats=quote.seats,
            add_ons=[{"code": code, "quantity": qty} for code, qty in pending.add_ons],
            lines=stored["lines"],
            subtotal=quote.subtotal,
            credits=stored["credits"],
            credit=quote.credit,
            tax=quote.tax,
            total=quote.total,
            unapplied_credit=quote.unapplied_credit,
            payment=payment,
            contract_start=stored["contract_start"],
            contract_end=stored["contract_end"],
            billing_contact=pending.billing_contact,
            invoice=invoice.to_dict(),
        )
        # One per service, however many of its periods were credited: the
        # service's share of the credit, split as the invoice shows it.
        for share in service_credits(quote.credits, quote.credit):
            self.trigger_event(
                ev.StandaloneContractTerminated,
                timestamp=at,
                checkout_id=checkout_id,
                service=share.service,
                remaining_days=share.remaining_days,
                amount_credited=share.amount,
                credit_applied=share.applied,
                credit_to_balance=share.to_balance,
                periods=[
                    {k: v for k, v in to_json(period).items() if k != "service"}
                    for period in share.periods
                ],
            )
        return True

    def fail_checkout(self, *, checkout_id: str, reason: str, at: datetime) -> bool:
        """Record that the charge did not happen; ``False`` if no longer pending."""
        at = ensure_utc(at)
        pending = self.facts.pending_checkout
        if pending is None or pending.checkout_id != checkout_id:
            return False
        self.trigger_event(
            ev.UpgradeCheckoutFailed, timestamp=at, checkout_id=checkout_id, reason=reason
        )
        return True

    # -- the contract (SPEC §11) ------------------------------------------------------

    def begin_renewal(
        self, *, renewal_id: str, at: datetime, catalog: Catalog, retry_now: bool = False
    ) -> RenewalCharge | None:
        """Record the intent of a renewal charge (RenewalChargeStarted); ``None`` if none is due.

        ``retry_now``: a past-due contract is retried at once (a new card was
        put on file); that attempt is outside the dunning schedule.
        """
        at = ensure_utc(at)
        contract = self.facts.contract
        if retry_now:
            if (
                self.facts.bundle_state != BundleState.PAST_DUE
                or contract is None
                or contract.pending_renewal is not None
            ):
                return None
        elif not renewal_due(self.facts, at):
            return None
        assert contract is not None
        charge = renewal_charge(catalog.bundle, contract)
        self.trigger_event(
            ev.RenewalChargeStarted,
            timestamp=at,
            renewal_id=renewal_id,
            attempt=contract.attempts + 1,
            scheduled=not retry_now,
            charge=charge.to_dict(),
            payment_method=contract.terms.payment_method.reference,
        )
        return charge

    def complete_renewal(
        self,
        *,
        renewal_id: str,
        payment: dict[str, Any],
        invoice_number: str,
        issued_at: datetime,
        at: datetime,
        catalog: Catalog,
    ) -> bool:
        """Record BundleRenewed with its invoice; ``False`` if the intent is settled already."""
        at = ensure_utc(at)
        contract, pending = self._pending_renewal(renewal_id)
        if pending is None:
            return False
        charge = pending.charge
        invoice = build_invoice(
            number=invoice_number,
            issued_at=issued_at,
            kind="renewal",
            charge_key=renewal_id,
            currency=charge["currency"],
            issuer=InvoiceIssuer.from_catalog(catalog.issuer),
            billing_contact=contract.billing_contact,
            lines=[
                period_line(
                    catalog.bundle,
                    kind=line["kind"],
                    code=line["code"],
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    months=line["months"],
                    billing_period=charge["billing_period"],
                )
                for line in charge["lines"]
            ],
            credits=[balance_credit_line(charge["credit_applied"])]
            if charge["credit_applied"]
            else [],
            payment=InvoicePayment.no_charge()
            if charge["total"] == 0
            else InvoicePayment.card(payment.get("brand"), payment.get("last4")),
            period_start=datetime.fromisoformat(charge["period_start"]),
            period_end=datetime.fromisoformat(charge["period_end"]),
        )
        if invoice.total != charge["total"]:  # pragma: no cover - one rule for both
            msg = f"invoice total {invoice.total} is not the charged {charge['total']}"
            raise ValueError(msg)
        self.trigger_event(
            ev.BundleRenewed,
            timestamp=at,
            renewal_id=renewal_id,
            attempt=pending.attempt,
            currency=charge["currency"],
            billing_period=charge["billing_period"],
            seats=charge["seats"],
            add_ons=charge["add_ons"],
            period_start=charge["period_start"],
            period_end=charge["period_end"],
            lines=charge["lines"],
            subtotal=charge["subtotal"],
            credit_applied=charge["credit_applied"],
            tax=charge["tax"],
            total=charge["total"],
            payment=dict(payment),
            invoice=invoice.to_dict(),
        )
        return True

    def fail_renewal(self, *, renewal_id: str, reason: str, at: datetime, catalog: Catalog) -> bool:
        """Record RenewalPaymentFailed (and, after the last attempt, the end)."""
        at = ensure_utc(at)
        contract, pending = self._pending_renewal(renewal_id)
        if pending is None:
            return False
        if pending.scheduled:
            upcoming = next_attempt_at(
                contract.terms.current_period_end,
                contract.failed_attempts + 1,
                catalog.bundle.dunning_retry_days,
            )
        else:
            # A retry after a card change leaves the dunning schedule as it was.
            upcoming = contract.terms.next_payment_attempt_at
        self.trigger_event(
            ev.RenewalPaymentFailed,
            timestamp=at,
            renewal_id=renewal_id,
            attempt=pending.attempt,
            reason=reason,
            next_attempt_at=None if upcoming is None else upcoming.isoformat(),
        )
        if upcoming is None:
            self._end_contract(reason=ENDED_PAYMENT_FAILED, by=None, at=at, catalog=catalog)
        return True

    def end_at_period_end(self, *, at: datetime, catalog: Catalog) -> bool:
        """Record the end of a contract set to cancel, once its period has ended."""
        at = ensure_utc(at)
        if not end_due(self.facts, at):
            return False
        self._end_contract(reason=ENDED_CANCELLED, by=None, at=at, catalog=catalog)
        return True

    def cancel_contract(self, *, by: str, at: datetime, catalog: Catalog) -> None:
        """Cancel at the period's end (BundleCancellationScheduled); while past due, at once."""
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = contract_cancellation_refusal(self.facts)
        if refusal is not None:
            raise StateConflict(_CONTRACT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)
        contract = self.facts.contract
        assert contract is not None
        if self.facts.bundle_state == BundleState.PAST_DUE:
            self._end_contract(reason=ENDED_CANCELLED, by=by, at=at, catalog=catalog)
            return
        self.trigger_event(
            ev.BundleCancellationScheduled,
            timestamp=at,
            by=by,
            effective_at=contract.terms.current_period_end.isoformat(),
        )

    def withdraw_cancellation(self, *, by: str, at: datetime) -> None:
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = withdrawal_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_CONTRACT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)
        self.trigger_event(ev.BundleCancellationWithdrawn, timestamp=at, by=by)

    def change_payment_method(
        self,
        *,
        by: str,
        gateway: str,
        payment_method: str,
        brand: str | None,
        last4: str | None,
        at: datetime,
    ) -> None:
        """Put a new card on file (a gateway's reusable payment method, never card data)."""
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        refusal = payment_method_refusal(self.facts)
        if refusal is not None:
            raise StateConflict(_CONTRACT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)
        self.trigger_event(
            ev.PaymentMethodChanged,
            timestamp=at,
            by=by,
            gateway=gateway,
            payment_method=payment_method,
            brand=brand,
            last4=last4,
        )

    def check_contract_rights(self, *, by: str, at: datetime) -> None:
        """Refuse (before any gateway call) what :meth:`change_payment_method` would."""
        at = ensure_utc(at)
        refusal = payment_method_refusal(self.facts)
        if refusal is not None:
            raise StateConflict(_CONTRACT_MESSAGES[refusal], code=refusal)
        self._require_bundle_rights(by, at)

    # -- mid-term changes (SPEC §11) ----------------------------------------------------

    def quote_change(self, wanted: WantedChange, *, at: datetime, catalog: Catalog) -> ChangeQuote:
        """Price a change of the plan now; records nothing."""
        at = ensure_utc(at)
        self._check_plan_change(at)
        contract = self.facts.contract
        assert contract is not None
        return price_change(catalog.bundle, contract.terms, wanted, at)

    def begin_change(
        self,
        *,
        change_id: str,
        by: str,
        wanted: WantedChange,
        expected_total: int,
        idempotency_key: str | None,
        at: datetime,
        catalog: Catalog,
    ) -> ChangeQuote:
        """Record a change: a charge's intent (``ChangeChargeStarted``) when something
        takes effect now, or ``BundleChangeScheduled`` alone when all of it waits."""
        refuse_card_numbers({"by": by})
        at = ensure_utc(at)
        self._check_plan_change(at)
        self._require_bundle_rights(by, at)
        contract = self.facts.contract
        assert contract is not None
        quote = price_change(catalog.bundle, contract.terms, wanted, at)
        if quote.total != expected_total:
            raise StateConflict(
                "The price changed since the quote was shown; confirm the new total.",
                code="quote_changed",
                details={"expected_total": expected_total, "quote": quote.to_dict()},
            )
        if quote.new_period and contract.terms.cancel_at_period_end:
            raise StateConflict(
                _CONTRACT_MESSAGES["cancellation_scheduled"], code="cancellation_scheduled"
            )
        card = contract.terms.payment_method.reference
        if quote.total > 0 and card is None:
            raise StateConflict(_CONTRACT_MESSAGES["no_payment_method"], code="no_payment_method")
        if not quote.changes_now:
            self._schedule_change(change_id, by, idempotency_key, quote, at)
            return quote
        self.trigger_event(
            ev.ChangeChargeStarted,
            timestamp=at,
            change_id=change_id,
            by=by,
            idempotency_key=idempotency_key,
            quote=quote.to_dict(),
            payment_method=card if quote.total > 0 else None,
        )
        return quote

    def complete_change(
        self,
        *,
        change_id: str,
        payment: dict[str, Any],
        invoice_number: str,
        issued_at: datetime,
        at: datetime,
        catalog: Catalog,
    ) -> bool:
        """Record ``BundleChanged`` with its invoice (and the scheduled part);
        ``False`` if this change is settled already."""
        at = ensure_utc(at)
        contract = self.facts.contract
        pending = None if contract is None else contract.pending_change
        if contract is None or pending is None or pending.change_id != change_id:
            return False
        quote = ChangeQuote.from_dict(pending.quote)
        invoice = build_invoice(
            number=invoice_number,
            issued_at=issued_at,
            kind="change",
            charge_key=change_id,
            currency=quote.currency,
            issuer=InvoiceIssuer.from_catalog(catalog.issuer),
            billing_contact=contract.billing_contact,
            lines=quote.invoice_lines(catalog.bundle),
            credits=quote.invoice_credits(catalog.bundle),
            payment=InvoicePayment.no_charge()
            if quote.total == 0
            else InvoicePayment.card(payment.get("brand"), payment.get("last4")),
            period_start=quote.period_start,
            period_end=quote.period_end,
        )
        if invoice.total != quote.total:  # pragma: no cover - one rule for both
            msg = f"invoice total {invoice.total} is not the charged {quote.total}"
            raise ValueError(msg)
        after = quote.terms_after.to_dict()
        self.trigger_event(
            ev.BundleChanged,
            timestamp=at,
            change_id=change_id,
            by=pending.by,
            currency=quote.currency,
            billing_period=after["billing_period"],
            seats=after["seats"],
            add_ons=after["add_ons"],
            changes=[c.to_dict() for c in quote.changes if c.takes_effect == NOW],
            new_period=quote.new_period,
            period_start=quote.period_start.isoformat(),
            period_end=quote.period_end.isoformat(),
            lines=[line.to_dict() for line in quote.lines],
            subtotal=quote.subtotal,
            unused_period_credit=None
            if quote.unused_period_credit is None
            else quote.unused_period_credit.to_dict(),
            period_credit_applied=quote.period_credit_applied,
            credited_to_balance=quote.credited_to_balance,
            credit_applied=quote.credit_balance_applied,
            tax=quote.tax,
            total=quote.total,
            payment=dict(payment),
            invoice=invoice.to_dict(),
        )
        if quote.schedule_changes:
            self._schedule_change(change_id, pending.by, pending.idempotency_key, quote, at)
        return True

    def fail_change(self, *, change_id: str, reason: str, at: datetime) -> bool:
        """Record ``ChangeChargeFailed``; ``False`` if this change is settled already."""
        at = ensure_utc(at)
        contract = self.facts.contract
        pending = None if contract is None else contract.pending_change
        if pending is None or pending.change_id != change_id:
            return False
        self.trigger_event(ev.ChangeChargeFailed, timestamp=at, change_id=change_id, reason=reason)
        return True

    def _check_plan_change(self, at: datetime) -> None:
        refusal = plan_change_refusal(self.facts, at)
        if refusal is not None:
            raise StateConflict(_CONTRACT_MESSAGES[refusal], code=refusal)

    def _schedule_change(
        self, change_id: str, by: str, idempotency_key: str | None, quote: ChangeQuote, at: datetime
    ) -> None:
        contract = self.facts.contract
        assert contract is not None
        scheduled = quote.scheduled_change
        before = contract.terms.scheduled_change
        self.trigger_event(
            ev.BundleChangeScheduled,
            timestamp=at,
            change_id=change_id,
            by=by,
            idempotency_key=idempotency_key,
            scheduled_change=None if scheduled is None else scheduled.to_dict(),
            replaces=None if before is None else before.to_dict(),
            takes_effect_at=contract.terms.current_period_end.isoformat(),
        )

    def _end_contract(self, *, reason: str, by: str | None, at: datetime, catalog: Catalog) -> None:
        self.trigger_event(ev.BundleEnded, timestamp=at, reason=reason, by=by)
        for code in catalog.service_codes:
            self.trigger_event(ev.ServiceDowngradedToFree, timestamp=at, service=code)

    def _pending_renewal(self, renewal_id: str) -> tuple[ContractFacts, PendingRenewal | None]:
        contract = self.facts.contract
        if contract is None:
            raise StateConflict(_CONTRACT_MESSAGES["no_active_contract"], code="no_active_contract")
        pending = contract.pending_renewal
        if pending is None or pending.renewal_id != renewal_id:
            return contract, None
        return contract, pending

    # -- helpers -----------------------------------------------------------------

    def _already_purchased(self, checkout_id: str) -> bool:
        contract = self.facts.contract
        return contract is not None and contract.checkout_id == checkout_id

    def _require_pending(self, checkout_id: str) -> PendingCheckout:
        pending = self.facts.pending_checkout
        if pending is None or pending.checkout_id != checkout_id:
            raise StateConflict(
                f"Checkout {checkout_id} is not in progress.",
                code="checkout_not_pending",
                details={"checkout_id": checkout_id},
            )
        return pending

    def _require_bundle_rights(self, by: str, at: datetime) -> None:
        decision = may_act_on_bundle(self.facts, by, at.date())
        if not decision.allowed:
            raise _carry_over_refusal(decision, "bundle_action_not_allowed")

    def _trial_details(self) -> dict[str, Any]:
        trial = self.facts.trial
        if trial is None:
            return {}
        return {
            "trial_ends_at": trial.ends_at.isoformat(),
            "extensions_used": trial.extensions_used,
        }

    @staticmethod
    def _require_service(service: str, catalog: Catalog) -> None:
        if catalog.service(service) is None:
            raise NotFound(
                f"Unknown service {service!r}.",
                code="unknown_service",
                details={"service": service, "known": list(catalog.service_codes)},
            )


def _is_alpha2(country: str) -> bool:
    """An officially assigned ISO 3166-1 alpha-2 code, not merely two capital letters."""
    return is_iso_country(country)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _carry_over_refusal(decision: CarryOverDecision, code: str) -> NotAllowed:
    services = ", ".join(decision.missing_admin_rights) or "any service"
    return NotAllowed(
        f"This user lacks admin rights on {services}; existing settings and data "
        "would not carry over. Unify the super admin, or ask a user with admin "
        "rights on every purchased service.",
        code=code,
        details={
            "missing_admin_rights": list(decision.missing_admin_rights),
            "super_admins": dict(decision.super_admins),
        },
    )


_CONFLICT_MESSAGES = {
    "trial_already_used": "This organization has already used its one trial.",
    "bundle_already_active": "The bundle is already active.",
    "trial_not_extendable": "The trial cannot be extended now.",
    "trial_extension_limit_reached": "The trial has already been extended.",
    "trial_not_cancellable": "There is no trial to cancel.",
    "checkout_in_progress": "An upgrade checkout is already in progress.",
}
_CONTRACT_MESSAGES = {
    "no_active_contract": "The organization has no running bundle contract.",
    "renewal_in_progress": "A renewal payment is being processed; try again in a moment.",
    "cancellation_already_scheduled": "The contract is already set to end at its period's end.",
    "no_cancellation_scheduled": "No cancellation is scheduled.",
    "contract_period_ended": "The contract's period has ended; the cancellation took effect.",
    "payment_past_due": "A renewal payment is past due: pay it (put a working card on file) "
    "before changing the plan.",
    "change_in_progress": "A change of the plan is being charged; try again in a moment.",
    "cancellation_scheduled": "The contract is set to end at its period's end: withdraw the "
    "cancellation before starting a yearly period.",
    "no_payment_method": "No card is on file to charge the change to: put one on file first "
    "(PUT .../subscription/payment-method).",
}
_STANDALONE_PLAN_MESSAGES = {
    "bundle_already_active": "The bundle is active: its services are no longer sold standalone.",
    "checkout_in_progress": "An upgrade checkout is in progress; record the plan once it "
    "completes or fails.",
}
