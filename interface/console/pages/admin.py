"""The administrators' screens, in the article's order (SPEC §13 items 1-4).

1. Home: each service's edition, contract and the URL to use.
2. The big red "Access CRM Plus" button; a carry-over refusal explained.
3. The trial banner (in the layout) and, after the end, the decision screen.
4. The upgrade: choices and the live order summary, company details and the
   sandbox card field, the receipt.

Every page asks the application what to show (``access_view``, ``quote``,
``trial_eligibility``); every button runs the same command the API runs.
"""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from application.previews import preview_trial_cancellation
from application.upgrade import PurchaseRequest
from domain.errors import DomainError
from domain.quote import AddOnRequest, UpgradeRequest
from interface import schemas as s
from interface.console.blueprint import console, services
from interface.console.pages.common import refusal
from interface.console.signed_in import organization_user

ORG = "/orgs/<uuid:organization_id>"
DEFAULT_BILLING_PERIOD = "yearly"
ADD_ON_FIELD = "add_on_"


def _organization_page(template: str, organization_id: UUID, **context: Any) -> str:
    """A page about one organization, with what the layout shows of it (name, banner)."""
    view = context.pop("view", None) or services().read_model.access(organization_id)
    return render_template(
        template,
        organization_id=organization_id,
        facts=services().app.facts(organization_id),
        view=view,
        bundle=view["bundle"],
        **context,
    )


@console.get(f"{ORG}/")
def home(organization_id: UUID) -> ResponseReturnValue:
    """Home: every service with its edition, contract and URL; the bundle's actions."""
    organization_user(organization_id)
    return _organization_page("console/home.html", organization_id)


@console.post(f"{ORG}/trial")
def start_trial(organization_id: UUID) -> ResponseReturnValue:
    """The red button: start the trial, or explain why this user may not."""
    user = organization_user(organization_id).user_id
    try:
        services().app.start_trial(organization_id, by=user)
    except DomainError as error:
        shown = refusal(error)
        if shown["code"] != "trial_initiator_cannot_carry_over":
            raise
        eligibility = services().app.trial_eligibility(organization_id, user)
        page = _organization_page(
            "console/trial_refused.html",
            organization_id,
            refusal=shown,
            eligibility=eligibility,
        )
        return page, shown["status"]
    flash(_("Your CRM Plus trial has started."))
    return redirect(url_for("console.home", organization_id=organization_id))


@console.post(f"{ORG}/trial/extension")
def extend_trial(organization_id: UUID) -> ResponseReturnValue:
    user = organization_user(organization_id).user_id
    services().app.extend_trial(organization_id, by=user)
    flash(_("The trial has been extended."))
    return redirect(url_for("console.home", organization_id=organization_id))


@console.get(f"{ORG}/trial/cancellation")
def confirm_cancellation(organization_id: UUID) -> ResponseReturnValue:
    """Before cancelling: which services fall to their free editions."""
    user = organization_user(organization_id).user_id
    preview = preview_trial_cancellation(services().app, organization_id, by=user)
    return _organization_page(
        "console/cancel_trial.html",
        organization_id,
        downgraded=preview.downgraded_to_free,
        after=preview.access_after,
    )


@console.post(f"{ORG}/trial/cancellation")
def cancel_trial(organization_id: UUID) -> ResponseReturnValue:
    user = organization_user(organization_id).user_id
    services().app.cancel_trial(organization_id, by=user)
    flash(_("The trial has been cancelled."))
    return redirect(url_for("console.home", organization_id=organization_id))


# -- the upgrade ----------------------------------------------------------------


def _add_on_quantities(form: MultiDict[str, str]) -> list[dict[str, Any]]:
    chosen = []
    for add_on in services().catalog.bundle.add_ons:
        text = form.get(f"{ADD_ON_FIELD}{add_on.code}", "").strip()
        quantity = int(text) if text.isdigit() else (text or 0)
        if quantity:
            chosen.append({"code": add_on.code, "quantity": quantity})
    return chosen


def _integer(text: str | None) -> Any:
    """A form's number as an int; anything else is passed on for the schema to refuse."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else text


def field_problems(invalid: ValidationError) -> dict[str, Any]:
    """The schema's field-level messages (as the API's 422 details show them)."""
    messages = invalid.messages
    return dict(messages) if isinstance(messages, dict) else {"_form": messages}


def _choice_body(form: MultiDict[str, str]) -> dict[str, Any]:
    """The quote request the form's fields make, in the API's own body shape."""
    return {
        "billing_period": form.get("billing_period") or DEFAULT_BILLING_PERIOD,
        "seats": _integer(form.get("seats")),
        "add_ons": _add_on_quantities(form),
    }


def _upgrade_request(body: dict[str, Any]) -> UpgradeRequest:
    return UpgradeRequest(
        billing_period=body["billing_period"],
        seats=body["seats"],
        add_ons=tuple(AddOnRequest(a["code"], a["quantity"]) for a in body["add_ons"]),
    )


def _priced(organization_id: UUID, form: MultiDict[str, str]) -> dict[str, Any]:
    """The choices, and their quote or why there is none (the API's schema and rules)."""
    body = _choice_body(form)
    if body["seats"] == "":
        body["seats"] = _minimum_seats(organization_id, body)
    try:
        loaded = s.QuoteRequestSchema().load(body, partial=("billing_contact",))
    except ValidationError as invalid:
        return {"choice": body, "quote": None, "invalid": field_problems(invalid)}
    try:
        quote = services().app.quote(organization_id, _upgrade_request(loaded)).to_dict()
    except DomainError as error:
        return {"choice": body, "quote": None, "refusal": refusal(error)}
    return {"choice": body, "quote": quote}


def _choice_query(choice: dict[str, Any]) -> dict[str, Any]:
    """The choices as the upgrade form's fields (for a link back to it)."""
    fields = {"billing_period": choice["billing_period"], "seats": choice["seats"]}
    fields.update({f"{ADD_ON_FIELD}{a['code']}": a["quantity"] for a in choice["add_ons"]})
    return fields


def _minimum_seats(organization_id: UUID, body: dict[str, Any]) -> int:
    """Seats to start the form with: one, or as many as the rules say are needed."""
    try:
        services().app.quote(organization_id, _upgrade_request({**body, "seats": 1}))
    except DomainError as error:
        minimum = error.details.get("minimum_seats")
        if isinstance(minimum, int):
            return minimum
    return 1


@console.get(f"{ORG}/upgrade")
def upgrade(organization_id: UUID) -> ResponseReturnValue:
    """Period, seats, add-ons and the order summary (refreshed live by console.js)."""
    organization_user(organization_id)
    priced = _priced(organization_id, request.args)
    return _organization_page(
        "console/upgrade.html",
        organization_id,
        add_ons=services().catalog.bundle.add_ons,
        quantities={a["code"]: a["quantity"] for a in priced["choice"]["add_ons"]},
        **priced,
    )


@console.get(f"{ORG}/upgrade/summary")
def order_summary(organization_id: UUID) -> ResponseReturnValue:
    """Just the order summary, for the page's script to swap in as choices change."""
    organization_user(organization_id)
    return render_template("console/_order_summary.html", **_priced(organization_id, request.args))


@console.get(f"{ORG}/upgrade/payment")
def payment(organization_id: UUID) -> ResponseReturnValue:
    """Company details and the card, with the total to be paid."""
    organization_user(organization_id)
    priced = _priced(organization_id, request.args)
    if priced["quote"] is None:
        choices = _choice_query(priced["choice"])
        return redirect(url_for("console.upgrade", organization_id=organization_id, **choices))
    return _payment_page(organization_id, priced, contact=None)


def _payment_page(
    organization_id: UUID,
    priced: dict[str, Any],
    *,
    contact: dict[str, Any] | None,
    **context: Any,
) -> str:
    facts = services().app.facts(organization_id)
    return _organization_page(
        "console/payment.html",
        organization_id,
        contact=contact or {"company_name": facts.name, "country": facts.country, "email": ""},
        # One key per payment page: a second click of Pay resumes the same checkout.
        idempotency_key=f"console-{secrets.token_urlsafe(18)}",
        change_plan_url=url_for(
            "console.upgrade", organization_id=organization_id, **_choice_query(priced["choice"])
        ),
        **priced,
        **context,
    )


@console.post(f"{ORG}/upgrade")
def pay(organization_id: UUID) -> ResponseReturnValue:
    """Pay: the same purchase the API runs, with the token the card field made."""
    user = organization_user(organization_id).user_id
    form = request.form
    contact = {
        "company_name": form.get("company_name", "").strip(),
        "country": form.get("country", "").strip().upper(),
        "email": form.get("email", "").strip(),
    }
    body = {
        **_choice_body(form),
        "billing_contact": contact,
        "payment_token": form.get("payment_token", ""),
        "expected_total": _integer(form.get("expected_total")),
    }
    key = form.get("idempotency_key") or None
    try:
        loaded = s.UpgradeRequestSchema().load(body)
        receipt = services().checkouts.purchase(
            organization_id,
            by=user,
            purchase=PurchaseRequest(
                request=_upgrade_request(loaded),
                billing_contact=loaded["billing_contact"],
                expected_total=loaded["expected_total"],
                payment_token=loaded["payment_token"],
            ),
            idempotency_key=key,
        )
    except ValidationError as invalid:
        page = _payment_page(
            organization_id,
            _priced(organization_id, form),
            contact=contact,
            invalid=field_problems(invalid),
        )
        return page, 422
    except DomainError as error:  # declined cards (402) and conflicts come back here
        done = _receipt_of_key(organization_id, key) if key else None
        if done is not None:  # Pay pressed twice: the first press bought it
            return redirect(
                url_for("console.receipt", organization_id=organization_id, checkout_id=done)
            )
        shown = refusal(error)
        page = _payment_page(
            organization_id, _priced(organization_id, form), contact=contact, refusal=shown
        )
        return page, shown["status"]
    return redirect(
        url_for(
            "console.receipt", organization_id=organization_id, checkout_id=receipt["checkout_id"]
        )
    )


def stream(organization_id: UUID) -> list[dict[str, Any]]:
    """The organization's whole stream (the API's query, page after page)."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = services().app.organization_events(organization_id, after=after, limit=500)
        events.extend(page["events"])
        if page["next"] is None:
            return events
        after = page["next"]


def _receipt_of_key(organization_id: UUID, key: str) -> str | None:
    """The checkout this idempotency key started, if it was paid."""
    events = stream(organization_id)
    started = {
        e["data"]["checkout_id"]
        for e in events
        if e["type"] == "UpgradeCheckoutStarted" and e["data"].get("idempotency_key") == key
    }
    paid = [
        e["data"]["checkout_id"]
        for e in events
        if e["type"] == "UpgradePurchased" and e["data"]["checkout_id"] in started
    ]
    return paid[0] if paid else None


@console.get(f"{ORG}/receipts/<string:checkout_id>")
def receipt(organization_id: UUID, checkout_id: str) -> ResponseReturnValue:
    """The receipt: what was bought, the credits, the tax, the card."""
    organization_user(organization_id)
    events = stream(organization_id)
    purchased = next(
        (
            e
            for e in events
            if e["type"] == "UpgradePurchased" and e["data"]["checkout_id"] == checkout_id
        ),
        None,
    )
    if purchased is None:
        abort(404)
    return _organization_page("console/receipt.html", organization_id, purchase=purchased)
