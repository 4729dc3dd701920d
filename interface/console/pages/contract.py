"""After the upgrade (SPEC §13 item 5, §11): the contract and what can be done with it.

The contract's terms are the access view's ``bundle.contract`` block (the same
block ``GET .../subscription`` answers); every button runs the application's
command the API runs (``cancel_contract``, ``withdraw_contract_cancellation``,
``Renewals.change_payment_method`` for ``PUT .../subscription/payment-method``,
``PlanChanges.quote`` and ``PlanChanges.change`` for ``POST .../subscription/change/quote``
and ``.../change``),
and refusals come back through the one error mapping.
"""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue, ResponseValue
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from application.plan_changes import SCHEDULED
from application.renewals import RENEWED
from domain.contract import contract_block
from domain.errors import DomainError
from domain.facts import BundleState
from interface import plan_change_schemas as pc
from interface import schemas as s
from interface.console import words
from interface.console.blueprint import console, services
from interface.console.i18n import moment, yen
from interface.console.pages.admin import (
    ORG,
    _add_on_quantities,
    _integer,
    _organization_page,
    field_problems,
)
from interface.console.pages.common import refusal
from interface.console.pages.invoices import min_position
from interface.console.signed_in import organization_user
from interface.routes.plan_change import wanted_change

#: The newest invoices the contract page lists (the invoices page has them all).
CONTRACT_INVOICES = 5


def _contract_page(template: str, organization_id: UUID, **context: Any) -> ResponseValue:
    """A page about the running contract (before the upgrade: home). A redirect
    after a command names its position, so the page shows what it did."""
    view = services().read_model.access(organization_id, min_position=min_position())
    contract = view["bundle"].get("contract")
    if contract is None:
        return redirect(url_for("console.home", organization_id=organization_id))
    return _organization_page(template, organization_id, view=view, contract=contract, **context)


@console.get(f"{ORG}/contract")
def contract(organization_id: UUID) -> ResponseReturnValue:
    """The contract: renewal date, seats, add-ons, credit balance, card; cancel or undo."""
    organization_user(organization_id)
    return _contract_page(
        "console/contract.html",
        organization_id,
        invoices=services().invoices.invoices(
            organization_id, limit=CONTRACT_INVOICES, min_position=min_position()
        ),
    )


@console.post(f"{ORG}/contract/cancellation")
def cancel_contract(organization_id: UUID) -> ResponseReturnValue:
    """Cancel at the period's end (while a payment is past due: at once)."""
    user = organization_user(organization_id).user_id
    past_due = services().app.facts(organization_id).bundle_state == BundleState.PAST_DUE
    services().app.cancel_contract(organization_id, by=user)
    if past_due:
        flash(_("The contract has ended."))
    else:
        flash(_("CRM Plus will end at the end of the current period."))
    return redirect(url_for("console.contract", organization_id=organization_id))


@console.post(f"{ORG}/contract/cancellation/withdrawal")
def withdraw_cancellation(organization_id: UUID) -> ResponseReturnValue:
    """Undo the cancellation before the period ends: the contract renews again."""
    user = organization_user(organization_id).user_id
    services().app.withdraw_contract_cancellation(organization_id, by=user)
    flash(_("The cancellation is withdrawn: CRM Plus renews as before."))
    return redirect(url_for("console.contract", organization_id=organization_id))


# -- the card on file -----------------------------------------------------------------


@console.get(f"{ORG}/contract/card")
def card(organization_id: UUID) -> ResponseReturnValue:
    """Update the card: the sandbox card field, which sends only a token."""
    organization_user(organization_id)
    return _contract_page("console/card.html", organization_id)


@console.post(f"{ORG}/contract/card")
def save_card(organization_id: UUID) -> ResponseReturnValue:
    """Put the token's card on file (``PUT .../subscription/payment-method``'s service);
    while past due the renewal is charged to it at once."""
    user = organization_user(organization_id).user_id
    body = {"payment_token": request.form.get("payment_token", "")}
    try:
        token = s.PaymentMethodSchema().load(body)["payment_token"]
        answer = services().renewals.change_payment_method(
            organization_id, by=user, payment_token=token
        )
    except ValidationError as invalid:
        page = _contract_page("console/card.html", organization_id, invalid=field_problems(invalid))
        return page, 422
    except DomainError as error:  # a token the gateway will not save (declined, unreadable)
        shown = refusal(error)
        return _contract_page("console/card.html", organization_id, refusal=shown), shown["status"]
    terms = contract_block(services().app.facts(organization_id)) or {}
    card_on_file = terms.get("payment_method") or {}
    flash(
        _(
            "The card on file is now %(brand)s •••• %(last4)s.",
            brand=str(card_on_file.get("brand") or "").title(),
            last4=card_on_file.get("last4") or "",
        )
    )
    after = {"organization_id": organization_id, "min_position": answer["position"]}
    renewal = answer["renewal"]
    if renewal == RENEWED:
        flash(_("The renewal was paid with the new card: the payment is no longer past due."))
    elif renewal is not None and terms.get("past_due_since"):
        flash(_("The renewal could not be paid with the new card either; try another card."))
        return redirect(url_for("console.card", **after))
    elif renewal is not None:
        flash(_("The renewal could not be paid, and the contract has ended."))
    return redirect(url_for("console.contract", **after))


# -- changing the plan ----------------------------------------------------------------


def _change_choice(form: MultiDict[str, str] | None, contract: dict[str, Any]) -> dict[str, Any]:
    """The wanted terms: the form's, or (before any choice) the contract's own."""
    if form is None:
        return {
            "billing_period": contract["billing_period"],
            "seats": contract["seats"],
            "add_ons": [dict(a) for a in contract["add_ons"]],
        }
    return {
        "billing_period": form.get("billing_period") or contract["billing_period"],
        "seats": _integer(form.get("seats")),
        "add_ons": _add_on_quantities(form),
    }


def _change_priced(
    organization_id: UUID, form: MultiDict[str, str] | None, contract: dict[str, Any]
) -> dict[str, Any]:
    """The wanted terms and their quote (``PlanChanges.quote``), or why there is none."""
    body = _change_choice(form, contract)
    # One key per quote shown: pressing Confirm twice answers the first change.
    priced: dict[str, Any] = {
        "choice": body,
        "quote": None,
        "idempotency_key": f"console-{secrets.token_urlsafe(18)}",
    }
    try:
        loaded = pc.ChangeQuoteRequestSchema().load(body)
    except ValidationError as invalid:
        return {**priced, "invalid": field_problems(invalid)}
    try:
        quote = services().plan_changes.quote(organization_id, wanted_change(loaded))
    except DomainError as error:
        return {**priced, "refusal": refusal(error)}
    return {**priced, "quote": quote}


def _change_page(
    organization_id: UUID, form: MultiDict[str, str] | None, **context: Any
) -> ResponseValue:
    view = services().read_model.access(organization_id, min_position=min_position())
    contract = view["bundle"].get("contract")
    if contract is None:
        return redirect(url_for("console.home", organization_id=organization_id))
    priced = _change_priced(organization_id, form, contract)
    return _organization_page(
        "console/change.html",
        organization_id,
        view=view,
        contract=contract,
        add_ons=services().catalog.bundle.add_ons,
        quantities={a["code"]: a["quantity"] for a in priced["choice"]["add_ons"]},
        **priced,
        **context,
    )


@console.get(f"{ORG}/contract/change")
def change_plan(organization_id: UUID) -> ResponseReturnValue:
    """Change plan: period, seats, add-ons, and the pro-rata quote (live with console.js)."""
    organization_user(organization_id)
    return _change_page(organization_id, None)


@console.post(f"{ORG}/contract/change/quote")
def change_quote(organization_id: UUID) -> ResponseReturnValue:
    """ "Show the quote" without JavaScript: the same page, priced for the form's terms."""
    organization_user(organization_id)
    return _change_page(organization_id, request.form)


@console.post(f"{ORG}/contract/change/summary")
def change_summary(organization_id: UUID) -> ResponseReturnValue:
    """Just the quote and its Confirm form, for the page's script to swap in."""
    organization_user(organization_id)
    contract = services().read_model.access(organization_id)["bundle"].get("contract")
    if contract is None:
        abort(404)
    return render_template(
        "console/_change_summary.html",
        organization_id=organization_id,
        **_change_priced(organization_id, request.form, contract),
    )


@console.post(f"{ORG}/contract/change")
def confirm_change(organization_id: UUID) -> ResponseReturnValue:
    """Buy the quoted change (``POST .../subscription/change``'s service, with the
    quote's total as ``expected_total`` and the page's idempotency key)."""
    user = organization_user(organization_id).user_id
    form = request.form
    body = {
        "billing_period": form.get("billing_period", ""),
        "seats": _integer(form.get("seats")),
        "add_ons": _add_on_quantities(form),
        "expected_total": _integer(form.get("expected_total")),
    }
    try:
        loaded = pc.ChangeRequestSchema().load(body)
        answer = services().plan_changes.change(
            organization_id,
            by=user,
            wanted=wanted_change(loaded),
            expected_total=loaded["expected_total"],
            idempotency_key=form.get("idempotency_key") or None,
        )
    except ValidationError as invalid:
        # Only a tampered form gets here (its fields are the quote's own): say which.
        shown = {
            "code": "validation_failed",
            "title": words.refusal_title("validation_failed"),
            "details": {"fields": field_problems(invalid)},
        }
        return _change_page(organization_id, form, confirm_refusal=shown), 422
    except DomainError as error:  # a changed price, a declined card, past due, no change…
        # Not an error page: the change page itself, saying in plain words why nothing
        # was bought and what to do next (_change_refusal.html), with the status the
        # API gives the same refusal, as every other console page does.
        refused = refusal(error)
        return _change_page(organization_id, form, confirm_refusal=refused), refused["status"]
    flash(_change_done(answer))
    return redirect(
        url_for(
            "console.contract", organization_id=organization_id, min_position=answer["position"]
        )
    )


def _change_done(answer: dict[str, Any]) -> str:
    """What the change did, in one sentence."""
    if answer["status"] == SCHEDULED:
        done = _(
            "The change takes effect at the renewal on %(end)s.",
            end=moment(answer["period_end"]),
        )
    elif answer["payment"] is None:
        done = _(
            "The plan has changed; nothing was charged (invoice %(number)s).",
            number=answer["invoice_number"],
        )
    else:
        done = _(
            "The plan has changed: %(total)s charged to %(brand)s •••• %(last4)s "
            "(invoice %(number)s).",
            total=yen(answer["total"]),
            brand=str(answer["payment"]["brand"]).title(),
            last4=answer["payment"]["last4"],
            number=answer["invoice_number"],
        )
    return str(done)
