"""``/v1/organizations/{org}/subscription``: the paid contract after the upgrade (SPEC §11).

The terms, cancellation at period end (and taking it back), and the card on
file. A few lines per route — parse, authorize, call, answer; the rules are
the domain's.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask.views import MethodView

from application.service import CommandResult
from domain.contract import contract_block
from domain.errors import NotFound
from interface import schemas as s
from interface.idempotent import idempotency_header, idempotent
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors
from interface.routes.organizations import ORG, _authorized, services

blp = ApiBlueprint(
    "subscription",
    __name__,
    url_prefix="/v1/organizations",
    description="The bundle contract after the upgrade: terms, cancellation, the card on file.",
)


def _answer(result: CommandResult, **extra: Any) -> dict[str, Any]:
    facts = result.facts
    assert facts is not None  # every command answers with its facts
    return {
        **result.to_dict(),
        "state": facts.bundle_state,
        "contract": contract_block(facts),
        **extra,
    }


@blp.route(f"{ORG}/subscription")
class Subscription(MethodView):
    @blp.arguments(s.AccessQuerySchema(), location="query")
    @blp.response(200, s.SubscriptionSchema)
    @errors(404, 422, 503)
    def get(self, query: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """The contract's terms (from `active` on); `min_position` reads your own writes."""
        _authorized(organization_id)
        view = services().read_model.access(organization_id, min_position=query.get("min_position"))
        contract = view["bundle"].get("contract")
        if contract is None:
            raise NotFound(
                "The organization has no bundle contract; buy the bundle first.",
                code="no_subscription",
                details={"state": view["bundle"]["state"]},
            )
        return {
            "organization_id": view["organization_id"],
            "version": view["version"],
            "position": view["position"],
            "state": view["bundle"]["state"],
            "contract": contract,
        }


@blp.route(f"{ORG}/subscription/cancellation")
class SubscriptionCancellation(MethodView):
    @blp.arguments(s.EmptySchema)
    @idempotent()
    @blp.response(200, s.SubscriptionCommandSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def post(self, _body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Cancel at the period's end (no refund); while past due the contract ends at once."""
        user = _authorized(organization_id)
        return _answer(services().app.cancel_contract(organization_id, by=user))

    @blp.response(200, s.SubscriptionCommandSchema)
    @errors(403, 404, 409)
    def delete(self, organization_id: UUID) -> dict[str, Any]:
        """Take back a scheduled cancellation, before the period's end."""
        user = _authorized(organization_id)
        result = services().app.withdraw_contract_cancellation(organization_id, by=user)
        return _answer(result)


@blp.route(f"{ORG}/subscription/payment-method")
class PaymentMethod(MethodView):
    @blp.arguments(s.PaymentMethodSchema)
    @idempotent()
    @blp.response(200, s.PaymentMethodChangedSchema)
    @errors(400, 402, 403, 404, 409, 422, 502)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def put(self, body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Put a new card on file (a token); while past due the renewal is charged at once."""
        user = _authorized(organization_id)
        found = services()
        answer = found.renewals.change_payment_method(
            organization_id, by=user, payment_token=body["payment_token"]
        )
        facts = found.app.facts(organization_id)
        return {**answer, "state": facts.bundle_state, "contract": contract_block(facts)}
