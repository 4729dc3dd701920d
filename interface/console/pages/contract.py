"""After the upgrade (SPEC §13 item 5, §11): the contract and what can be done with it.

The contract's terms are the access view's ``bundle.contract`` block (the same
block ``GET .../subscription`` answers); every button runs the application's
command the API runs (``cancel_contract``, ``withdraw_contract_cancellation``),
and refusals come back through the one error mapping.
"""

from __future__ import annotations

from uuid import UUID

from flask import flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from domain.facts import BundleState
from interface.console.blueprint import console, services
from interface.console.pages.admin import ORG, _organization_page
from interface.console.pages.invoices import min_position
from interface.console.signed_in import organization_user

#: The newest invoices the contract page lists (the invoices page has them all).
CONTRACT_INVOICES = 5


@console.get(f"{ORG}/contract")
def contract(organization_id: UUID) -> ResponseReturnValue:
    """The contract: renewal date, seats, add-ons, credit balance, card; cancel or undo."""
    organization_user(organization_id)
    view = services().read_model.access(organization_id)
    if view["bundle"].get("contract") is None:
        return redirect(url_for("console.home", organization_id=organization_id))
    return _organization_page(
        "console/contract.html",
        organization_id,
        view=view,
        contract=view["bundle"]["contract"],
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
