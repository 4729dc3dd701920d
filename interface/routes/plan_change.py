"""``/v1/organizations/{org}/subscription/change``: mid-term plan changes (SPEC §11)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import current_app, request
from flask.views import MethodView

from application.bootstrap import Services
from domain.contract_change import WantedChange
from domain.quote import AddOnRequest
from interface import plan_change_schemas as s
from interface.idempotent import idempotency_header, idempotent
from interface.request_guard import current_principal
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors

blp = ApiBlueprint(
    "plan_change",
    __name__,
    url_prefix="/v1/organizations",
    description="Changing the bundle's plan mid-term: seats, add-ons, billing period.",
)

ORG = "/<uuid:organization_id>"


def services() -> Services:
    found: Services = current_app.extensions["suitesub"]
    return found


def _authorized(organization_id: UUID) -> str:
    principal = current_principal()
    principal.require_organization(organization_id)
    return principal.user_id


def wanted_change(body: dict[str, Any]) -> WantedChange:
    """The loaded body (``ChangeQuoteRequestSchema``) as the domain's wanted change;
    the console's change page makes its body the same way."""
    add_ons = body.get("add_ons")
    return WantedChange(
        seats=body.get("seats"),
        add_ons=None
        if add_ons is None
        else tuple(AddOnRequest(a["code"], a["quantity"]) for a in add_ons),
        billing_period=body.get("billing_period"),
    )


@blp.route(f"{ORG}/subscription/change/quote")
class PlanChangeQuote(MethodView):
    @blp.arguments(s.ChangeQuoteRequestSchema)
    @blp.response(200, s.ChangeQuoteSchema)
    @errors(404, 409, 422)
    def post(self, body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Price a change of the plan now (pro rata, or a new yearly period); records nothing."""
        _authorized(organization_id)
        return services().plan_changes.quote(organization_id, wanted_change(body))


@blp.route(f"{ORG}/subscription/change")
class PlanChange(MethodView):
    @blp.arguments(s.ChangeRequestSchema)
    @idempotent(required=True)
    @blp.response(200, s.ChangeAnswerSchema)
    @errors(400, 402, 403, 404, 409, 422, 502)
    @blp.doc(parameters=[idempotency_header(required=True)])
    def post(self, body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Change the plan (Idempotency-Key required): increases now, decreases at renewal."""
        user = _authorized(organization_id)
        return services().plan_changes.change(
            organization_id,
            by=user,
            wanted=wanted_change(body),
            expected_total=body["expected_total"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
