"""What the console says about events, refusals and view cells, in the page's language.

Only words live here: each event type's sentence, each refusal code's
explanation. What happened and why is decided by the domain (the events'
data, the refusals' codes and details); this module only puts it in words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from domain.access_view import NOTE_AFTER_UPGRADE, NOTE_DECISION
from interface.console.blueprint import services as console_services
from interface.console.i18n import moment, yen


def _(text: str, **variables: Any) -> str:
    """``gettext``, typed: the sentence in the page's language."""
    return str(gettext(text, **variables))


CELL_WORDS: Mapping[str, Any] = {
    "paid": _l("Paid"),
    "trial": _l("Trial"),
    "free": _l("Free"),
    "none": _l("None"),
    "standalone": _l("Standalone"),
    "bundle": _l("CRM Plus"),
}

STATE_WORDS: Mapping[str, Any] = {
    "none": _l("No bundle"),
    "trial": _l("Trial"),
    "trial_expired": _l("Trial ended"),
    "cancelled": _l("Trial cancelled"),
    "active": _l("Active"),
    "past_due": _l("Payment past due"),
    "ended": _l("Ended"),
}

DELIVERY_WORDS: Mapping[str, Any] = {
    "pending": _l("Pending"),
    "delivered": _l("Delivered"),
    "cancelled": _l("Cancelled"),
}

#: What an invoice was issued for (``domain.invoice.INVOICE_KINDS``).
INVOICE_KIND_WORDS: Mapping[str, Any] = {
    "upgrade": _l("Upgrade to CRM Plus"),
    "renewal": _l("Renewal"),
    "change": _l("Change of the plan"),
}

#: Why a contract ended (``BundleEnded.reason``).
ENDED_WORDS: Mapping[str, Any] = {
    "cancelled": _l("cancelled at the period's end"),
    "payment_failed": _l("the last renewal payment failed"),
}

PERIOD_WORDS: Mapping[str, Any] = {"monthly": _l("Monthly"), "yearly": _l("Yearly")}

#: The access view's notes, as the domain writes them, in the page's language.
NOTE_WORDS: Mapping[str, Any] = {
    NOTE_AFTER_UPGRADE: _l("Use the standalone URL until the upgrade: inside CRM Plus after it."),
    NOTE_DECISION: _l("The trial has ended: upgrade, extend or cancel it first."),
}

ADD_ON_WORDS: Mapping[str, Any] = {
    "storage-10gb": _l("Storage, 10 GB"),
    "extra-portal": _l("Extra portal"),
    "advanced-analytics": _l("Advanced analytics"),
}


def cell(word: str | None) -> str:
    return str(CELL_WORDS.get(word or "none", word))


def state(code: str) -> str:
    return str(STATE_WORDS.get(code, code))


def delivery_status(code: str) -> str:
    return str(DELIVERY_WORDS.get(code, code))


def period(code: str) -> str:
    return str(PERIOD_WORDS.get(code, code))


def invoice_kind(code: str) -> str:
    return str(INVOICE_KIND_WORDS.get(code, code))


def note(text: str | None) -> str:
    return "" if text is None else str(NOTE_WORDS.get(text, text))


def service(code: str) -> str:
    """A service's name, as the catalog spells it."""
    found = console_services().catalog.service(code)
    return code if found is None else found.name


def service_list(codes: Any) -> str:
    return ", ".join(service(c) for c in codes) or "—"


def add_on(code: str) -> str:
    return str(ADD_ON_WORDS.get(code, code))


def add_on_list(add_ons: Any) -> str:
    """A contract's add-ons (``[{code, quantity}]``) in words, or "none"."""
    shown = [f"{add_on(a['code'])} × {a['quantity']}" for a in add_ons]
    return ", ".join(shown) or _("none")


def _date(value: Any) -> str:
    return moment(value) if isinstance(value, str) and "T" in value else str(value)


_EVENT_SENTENCES: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "OrganizationRegistered": lambda d: _(
        "Organization %(name)s (%(country)s) registered, owner %(owner)s.",
        name=d.get("name"),
        country=d.get("country"),
        owner=d.get("owner_user_id"),
    ),
    "StandaloneSubscriptionRecorded": lambda d: _(
        "%(service)s plan recorded: %(seats)s seats, %(period)s, %(paid)s paid for "
        "%(start)s to %(end)s; super admin %(admin)s.",
        service=service(d.get("service", "")),
        seats=d.get("seats"),
        period=period(d.get("billing_period", "")),
        paid=yen(int(d.get("amount_paid", 0))),
        start=d.get("period_start"),
        end=d.get("period_end"),
        admin=d.get("super_admin"),
    ),
    "ServiceAdminsChanged": lambda d: _(
        "%(service)s super admin set to %(admin)s.",
        service=service(d.get("service", "")),
        admin=d.get("super_admin"),
    ),
    "TrialStarted": lambda d: _(
        "CRM Plus trial started; it ends %(end)s. Carried over: %(carried)s.",
        end=_date(d.get("ends_at")),
        carried=service_list(d.get("carried_over", [])),
    ),
    "TrialExtended": lambda d: _(
        "Trial extended (extension %(number)s): it now ends %(end)s.",
        number=d.get("extension_number"),
        end=_date(d.get("new_end")),
    ),
    "TrialExpired": lambda d: _(
        "The trial ended %(end)s with no decision.", end=_date(d.get("ends_at"))
    ),
    "TrialCancelled": lambda d: _("Trial cancelled."),
    "ServiceDowngradedToFree": lambda d: _(
        "%(service)s moved to its free edition.", service=service(d.get("service", ""))
    ),
    "UpgradeCheckoutStarted": lambda d: _(
        "Checkout started for %(total)s.", total=yen(int(d.get("quote", {}).get("total", 0)))
    ),
    "UpgradeCheckoutFailed": lambda d: _(
        "Checkout failed: %(reason)s.", reason=refusal_title(str(d.get("reason", "")))
    ),
    "UpgradePurchased": lambda d: _(
        "CRM Plus purchased: %(seats)s seats, %(period)s, %(total)s paid by %(brand)s "
        "ending %(last4)s.",
        seats=d.get("seats"),
        period=period(d.get("billing_period", "")),
        total=yen(int(d.get("total", 0))),
        brand=d.get("payment", {}).get("brand"),
        last4=d.get("payment", {}).get("last4"),
    ),
    "BundleCancellationScheduled": lambda d: _(
        "Cancellation scheduled: CRM Plus ends %(end)s.", end=_date(d.get("effective_at"))
    ),
    "BundleCancellationWithdrawn": lambda d: _(
        "Cancellation withdrawn: CRM Plus renews as before."
    ),
    "ChangeChargeStarted": lambda d: _(
        "Plan change charge started for %(total)s.",
        total=yen(int(d.get("quote", {}).get("total", 0))),
    ),
    "ChangeChargeFailed": lambda d: _(
        "Plan change charge failed: %(reason)s.", reason=refusal_title(str(d.get("reason", "")))
    ),
    "BundleChanged": lambda d: _(
        "Plan changed: %(seats)s seats, %(period)s, %(add_ons)s; %(total)s charged "
        "(invoice %(number)s).",
        seats=d.get("seats"),
        period=period(d.get("billing_period", "")),
        add_ons=add_on_list(d.get("add_ons") or []),
        total=yen(int(d.get("total", 0))),
        number=(d.get("invoice") or {}).get("number"),
    ),
    "BundleChangeScheduled": lambda d: _(
        "Plan change scheduled for the renewal on %(at)s.", at=_date(d.get("takes_effect_at"))
    ),
    "PaymentMethodChanged": lambda d: _(
        "Card on file changed to %(brand)s ending %(last4)s.",
        brand=d.get("brand"),
        last4=d.get("last4"),
    ),
    "RenewalChargeStarted": lambda d: _(
        "Renewal charge started (attempt %(attempt)s).", attempt=d.get("attempt")
    ),
    "RenewalPaymentFailed": lambda d: _(
        "Renewal payment failed (attempt %(attempt)s): %(reason)s.",
        attempt=d.get("attempt"),
        reason=refusal_title(str(d.get("reason", ""))),
    ),
    "BundleRenewed": lambda d: _(
        "CRM Plus renewed until %(end)s: %(seats)s seats, %(period)s; %(total)s charged "
        "(invoice %(number)s).",
        end=_date(d.get("period_end")),
        seats=d.get("seats"),
        period=period(d.get("billing_period", "")),
        total=yen(int(d.get("total", 0))),
        number=(d.get("invoice") or {}).get("number"),
    ),
    "BundleEnded": lambda d: _(
        "CRM Plus ended (%(reason)s).", reason=ENDED_WORDS.get(d.get("reason", ""), d.get("reason"))
    ),
    "StandaloneContractTerminated": lambda d: _(
        "%(service)s standalone contract ended; %(credit)s credited for %(days)s unused days.",
        service=service(d.get("service", "")),
        credit=yen(int(d.get("amount_credited", 0))),
        days=d.get("remaining_days"),
    ),
}


def event_sentence(event_type: str, data: Mapping[str, Any]) -> str:
    """One event in plain words (an event type this console does not know: its name)."""
    sentence = _EVENT_SENTENCES.get(event_type)
    return event_type if sentence is None else sentence(data)


_REFUSAL_TITLES: Mapping[str, Any] = {
    "trial_initiator_cannot_carry_over": _l(
        "You cannot start the trial: your existing services would not carry over"
    ),
    "trial_already_used": _l("This organization has already used its trial"),
    "bundle_already_active": _l("CRM Plus is already active"),
    "trial_not_extendable": _l("The trial cannot be extended now"),
    "trial_extension_limit_reached": _l("The trial has already been extended"),
    "checkout_in_progress": _l("A payment is already in progress; wait a moment"),
    "quote_changed": _l("The price changed; check the new total and pay again"),
    "card_declined": _l("The card was declined"),
    "insufficient_funds": _l("The card has insufficient funds"),
    "payment_gateway_error": _l("The payment service did not answer; nothing was charged"),
    "invalid_payment_token": _l("The card could not be read; enter it again"),
    "seats_below_current_licenses": _l("You need at least as many seats as your current licenses"),
    "not_allowed": _l("You are not allowed to do this"),
    "not_found": _l("Not found"),
    "invoice_not_found": _l("There is no such invoice for this organization"),
    "no_change": _l("These are already the contract's terms"),
    "payment_past_due": _l("A renewal payment is past due: pay the renewal first"),
    "change_in_progress": _l("A change of the plan is being charged; wait a moment"),
    "renewal_in_progress": _l("A renewal payment is being processed; wait a moment"),
    "cancellation_scheduled": _l(
        "The contract is set to end: keep CRM Plus before starting a yearly period"
    ),
    "no_payment_method": _l("No card is on file: update the card first"),
    "no_active_contract": _l("There is no running CRM Plus contract"),
    "idempotency_key_reused": _l("This form was already used for another change; reload it"),
    "organization_not_found": _l("Not found"),
    "raw_card_data_not_accepted": _l(
        "A card number was typed outside the card field; nothing was sent on"
    ),
    "csrf": _l("The form has expired; reload the page and try again"),
    "validation_failed": _l("Some fields need correcting"),
}


def refusal_title(code: str) -> str:
    return str(_REFUSAL_TITLES.get(code, code))


_BUNDLE_FIELDS: Mapping[str, Any] = {
    "state": _l("state"),
    "trial_ends_at": _l("trial end"),
    "extensions_used": _l("extensions used"),
    "available_actions": _l("available actions"),
}

_ACTIONS: Mapping[str, Any] = {
    "start_trial": _l("start the trial"),
    "extend_trial": _l("extend the trial"),
    "cancel_trial": _l("cancel the trial"),
    "upgrade": _l("upgrade"),
}


def _bundle_value(name: str, value: Any) -> str:
    if value is None or value == []:
        return "—"
    if name == "state":
        return state(value)
    if name == "trial_ends_at":
        return moment(value)
    if name == "available_actions":
        return ", ".join(str(_ACTIONS.get(a, a)) for a in value)
    return str(value)


def _cell_words(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "—"
    return " · ".join(cell(value.get(part)) for part in ("edition", "contract", "access"))


def view_change(subject: str, name: str, before: Any, after: Any) -> str:
    """One change of the access view (``application.audit.ViewChange``) in words."""
    if subject == "bundle":
        return _(
            "CRM Plus %(field)s: %(before)s → %(after)s",
            field=_BUNDLE_FIELDS.get(name, name),
            before=_bundle_value(name, before),
            after=_bundle_value(name, after),
        )
    return _(
        "%(service)s: %(before)s → %(after)s",
        service=service(subject),
        before=_cell_words(before),
        after=_cell_words(after),
    )


_OIDC_REFUSALS: Mapping[str, Any] = {
    "provider_refused": _l("The identity provider did not sign you in."),
    "no_sign_in_started": _l("The sign-in has expired or was already used: start it again."),
    "no_organization": _l(
        "Your identity names no organization of this service: ask your administrator "
        "to add your organization to your account at the identity provider."
    ),
    "provider_unreachable": _l(
        "The identity provider did not answer as expected; try again later."
    ),
}
_OIDC_REFUSALS_LIKE = {
    "unknown_organization": "no_organization",
    "provider_answer_invalid": "provider_unreachable",
    "issuer_mismatch": "provider_unreachable",
    "pkce_not_supported": "provider_unreachable",
}
_OIDC_NOT_VERIFIED = _l(
    "The identity provider's answer could not be verified; nobody was signed in."
)


def oidc_refusal(reason: str) -> str:
    """Why an OpenID Connect sign-in failed (``OidcError.reason``), in words."""
    found = _OIDC_REFUSALS.get(_OIDC_REFUSALS_LIKE.get(reason, reason), _OIDC_NOT_VERIFIED)
    return str(found)
