"""``/v1/organizations``: a few lines per route — parse, authorize, call, answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from flask import Response, current_app, request
from flask.views import MethodView

from application.bootstrap import Services
from application.upgrade import PurchaseRequest
from domain.quote import AddOnRequest, UpgradeRequest
from interface import schemas as s
from interface.idempotent import idempotency_header, idempotent
from interface.request_guard import current_principal
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors

blp = ApiBlueprint(
    "organizations",
    __name__,
    url_prefix="/v1/organizations",
    description="Organizations: standalone plans, the bundle trial, the upgrade, views.",
)

ORG = "/<uuid:organization_id>"


def services() -> Services:
    found: Services = current_app.extensions["suitesub"]
    return found


def _authorized(organization_id: UUID) -> str:
    """The acting user, after checking the token may see this organization."""
    principal = current_principal()
    principal.require_organization(organization_id)
    return principal.user_id


def _upgrade_request(body: dict[str, Any]) -> UpgradeRequest:
    return UpgradeRequest(
        billing_period=body["billing_period"],
        seats=body["seats"],
        add_ons=tuple(AddOnRequest(a["code"], a["quantity"]) for a in body["add_ons"]),
    )


@blp.route("")
class Organizations(MethodView):
    operator_only = frozenset({"GET", "POST"})  # checked before the body (request_guard)

    @blp.arguments(s.DirectoryQuerySchema, location="query")
    @blp.response(200, s.DirectoryPageSchema)
    @errors(403, 422, 503)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The organization directory (operator), by id; `next` is the cursor."""
        current_principal().require_operator()
        after = query["after"]
        return services().read_model.organizations(
            state=query["state"],
            after=None if after is None else str(after),
            limit=query["limit"],
            min_position=query["min_position"],
        )

    @blp.arguments(s.RegisterOrganizationSchema)
    @idempotent()
    @blp.response(201, s.OrganizationSchema)
    @errors(403, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register an organization (operator)."""
        current_principal().require_operator()
        result = services().app.register_organization(**body)
        return {"id": result.organization_id, **body, **result.to_dict()}


@blp.route(f"{ORG}/services/<string:service>/subscription")
class StandaloneSubscription(MethodView):
    operator_only = frozenset({"PUT"})

    @blp.arguments(s.StandaloneSubscriptionSchema)
    @idempotent()
    @blp.response(200, s.SubscriptionRecordedSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def put(self, body: dict[str, Any], organization_id: UUID, service: str) -> dict[str, Any]:
        """Record a paid standalone subscription of one service (operator)."""
        user = _authorized(organization_id)
        current_principal().require_operator()
        result = services().app.record_standalone_subscription(
            organization_id, service=service, by=user, **body
        )
        return {**result.to_dict(), "service": service}


@blp.route(f"{ORG}/services/<string:service>/admins")
class ServiceAdmins(MethodView):
    @blp.arguments(s.ServiceAdminsSchema)
    @idempotent()
    @blp.response(200, s.SubscriptionRecordedSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def put(self, body: dict[str, Any], organization_id: UUID, service: str) -> dict[str, Any]:
        """Change a service's super admin and admins (operator, or its super admin)."""
        user = _authorized(organization_id)
        operator = current_principal().is_operator
        result = services().app.change_service_admins(
            organization_id, service=service, by=user, by_operator=operator, **body
        )
        return {**result.to_dict(), "service": service}


@blp.route(f"{ORG}/trial/eligibility")
class TrialEligibility(MethodView):
    @blp.response(200, s.EligibilitySchema)
    @errors(404)
    def get(self, organization_id: UUID) -> dict[str, Any]:
        """May the calling user start the trial, and what would carry over?"""
        user = _authorized(organization_id)
        return services().app.trial_eligibility(organization_id, user)


def _trial_command(organization_id: UUID, act: Any) -> dict[str, Any]:
    result = act(organization_id, by=_authorized(organization_id))
    assert result.facts is not None  # every command answers with its facts
    return {**result.to_dict(), "bundle": services().app.bundle_view(result.facts)}


@blp.route(f"{ORG}/trial")
class Trial(MethodView):
    @blp.arguments(s.EmptySchema)
    @idempotent()
    @blp.response(201, s.TrialCommandSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def post(self, _body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Start the bundle trial (the carry-over rule decides who may)."""
        return _trial_command(organization_id, services().app.start_trial)


@blp.route(f"{ORG}/trial/extension")
class TrialExtension(MethodView):
    @blp.arguments(s.EmptySchema)
    @idempotent()
    @blp.response(200, s.TrialCommandSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def post(self, _body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Extend the trial once, from 7 days before its end."""
        return _trial_command(organization_id, services().app.extend_trial)


@blp.route(f"{ORG}/trial/cancellation")
class TrialCancellation(MethodView):
    @blp.arguments(s.EmptySchema)
    @idempotent()
    @blp.response(200, s.TrialCommandSchema)
    @errors(403, 404, 409, 422)
    @blp.doc(parameters=[idempotency_header(required=False)])
    def post(self, _body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Cancel the trial: services not purchased fall to their free editions."""
        return _trial_command(organization_id, services().app.cancel_trial)


@blp.route(f"{ORG}/upgrade/quote")
class UpgradeQuote(MethodView):
    @blp.arguments(s.QuoteRequestSchema)
    @blp.response(200, s.QuoteSchema)
    @errors(404, 409, 422)
    def post(self, body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Price the upgrade now, with credits for running standalone plans; records nothing."""
        _authorized(organization_id)
        return services().app.quote(organization_id, _upgrade_request(body)).to_dict()


@blp.route(f"{ORG}/upgrade")
class Upgrade(MethodView):
    @blp.arguments(s.UpgradeRequestSchema)
    @idempotent(required=True)
    @blp.response(201, s.ReceiptSchema)
    @errors(400, 402, 403, 404, 409, 422, 502)
    @blp.doc(parameters=[idempotency_header(required=True)])
    def post(self, body: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """Buy the bundle (Idempotency-Key required): checkout, charge, record."""
        user = _authorized(organization_id)
        purchase = PurchaseRequest(
            request=_upgrade_request(body),
            billing_contact=body["billing_contact"],
            expected_total=body["expected_total"],
            payment_token=body["payment_token"],
        )
        return services().checkouts.purchase(
            organization_id,
            by=user,
            purchase=purchase,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )


@blp.route(f"{ORG}/access")
class Access(MethodView):
    # The hottest read: its schemas are built once, and the view, already in
    # AccessViewSchema's shape, is not dumped through marshmallow again (that
    # was an eighth of the request) nor through jsonify (docs/performance.md).
    # The OpenAPI contract tests hold the answer to the schema. Benchmark:
    # access_read_http (below its target without it).
    @blp.arguments(s.AccessQuerySchema(), location="query")
    @blp.response(200, s.AccessViewSchema)
    @errors(404, 422, 503)
    def get(self, query: dict[str, Any], organization_id: UUID) -> Response:
        """The access view: each service's edition, contract, access and URL."""
        _authorized(organization_id)
        view = services().read_model.access(organization_id, min_position=query["min_position"])
        # orjson: the same document as jsonify (compact, a final newline) at a
        # fifth of the cost.
        return Response(
            orjson.dumps(
                {
                    "organization_id": view["organization_id"],
                    "version": view["version"],
                    "position": view["position"],
                    "bundle": view["bundle"],
                    "services": view["services"],
                }
            )
            + b"\n",
            mimetype="application/json",
        )


@blp.route(f"{ORG}/events")
class Events(MethodView):
    @blp.arguments(s.EventsQuerySchema, location="query")
    @blp.response(200, s.EventPageSchema)
    @errors(404, 422)
    def get(self, query: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """The organization's event stream, oldest first (`after` a position)."""
        _authorized(organization_id)
        return services().app.organization_events(
            organization_id, after=query["after"], limit=query["limit"]
        )
