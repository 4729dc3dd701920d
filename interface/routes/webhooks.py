"""``/v1/events`` (the integration-event feed) and ``/v1/webhook-endpoints`` (operator)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from interface import webhook_schemas as ws
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors
from interface.routes.organizations import services

feed = ApiBlueprint(
    "integration_events",
    __name__,
    url_prefix="/v1/events",
    description="Integration events of every organization, oldest first (operator).",
)
blp = ApiBlueprint(
    "webhook_endpoints",
    __name__,
    url_prefix="/v1/webhook-endpoints",
    description="Webhook endpoints: signed pushes of the integration events (operator).",
)

ENDPOINT = "/<string:endpoint_id>"
ALL = frozenset({"GET", "POST", "PATCH", "DELETE"})


@feed.route("")
class Feed(MethodView):
    operator_only = ALL

    @feed.arguments(ws.FeedQuerySchema, location="query")
    @feed.response(200, ws.FeedPageSchema)
    @errors(403, 422)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Integration events after a position (`types` filters; `next` is the cursor)."""
        found = services()
        if found.read_model.settings.follow_on_read:
            found.webhooks.integration.catch_up()
        types = [t.strip() for t in query["types"].split(",") if t.strip()]
        return found.webhooks.integration.page(
            after=query["after"], types=types, limit=query["limit"]
        )


@blp.route("")
class Endpoints(MethodView):
    operator_only = ALL

    @blp.response(200, ws.EndpointListSchema)
    @errors(403)
    def get(self) -> dict[str, Any]:
        """Every webhook endpoint."""
        return {"endpoints": services().webhooks.endpoints.list()}

    @blp.arguments(ws.EndpointCreateSchema)
    @blp.response(201, ws.EndpointWithSecretSchema)
    @errors(403)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create an endpoint; the answer shows its signing secret, once."""
        return services().webhooks.endpoints.create(**body)


@blp.route(ENDPOINT)
class Endpoint(MethodView):
    operator_only = ALL

    @blp.response(200, ws.EndpointSchema)
    @errors(403, 404)
    def get(self, endpoint_id: str) -> dict[str, Any]:
        """One endpoint (`disabled_reason` says why it was disabled)."""
        return services().webhooks.endpoints.get(endpoint_id)

    @blp.arguments(ws.EndpointPatchSchema)
    @blp.response(200, ws.EndpointSchema)
    @errors(403, 404)
    def patch(self, body: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """Change the URL, the events or the description, or disable / enable."""
        return services().webhooks.endpoints.update(endpoint_id, **body)

    @blp.response(204)
    @errors(403, 404)
    def delete(self, endpoint_id: str) -> Response:
        """Delete the endpoint; its pending deliveries are cancelled."""
        services().webhooks.endpoints.delete(endpoint_id)
        return Response(status=204)


@blp.route(f"{ENDPOINT}/secret/rotation")
class SecretRotation(MethodView):
    operator_only = ALL

    @blp.response(200, ws.EndpointWithSecretSchema)
    @errors(403, 404)
    def post(self, endpoint_id: str) -> dict[str, Any]:
        """A new signing secret; the old one keeps signing beside it for 24 h."""
        return services().webhooks.endpoints.rotate_secret(endpoint_id)


@blp.route(f"{ENDPOINT}/deliveries")
class Deliveries(MethodView):
    operator_only = ALL

    @blp.arguments(ws.DeliveriesQuerySchema, location="query")
    @blp.response(200, ws.DeliveryPageSchema)
    @errors(403, 404, 422)
    def get(self, query: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """The endpoint's deliveries, newest first: status, attempts, last answer, next try."""
        return services().webhooks.endpoints.deliveries(endpoint_id, **query)


@blp.route(f"{ENDPOINT}/deliveries/<string:delivery_id>/retry")
class DeliveryRetry(MethodView):
    operator_only = ALL

    @blp.response(200, ws.DeliverySchema)
    @errors(403, 404, 409)
    def post(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """Attempt a delivery again now."""
        found = services().webhooks
        answer = found.endpoints.retry(endpoint_id, delivery_id)
        found.dispatcher.wake()
        return answer


@blp.route(f"{ENDPOINT}/replay")
class Replay(MethodView):
    operator_only = ALL

    @blp.arguments(ws.ReplaySchema)
    @blp.response(200, ws.ReplayAnswerSchema)
    @errors(403, 404)
    def post(self, body: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """Send again every subscribed event after a position (the same event ids)."""
        found = services().webhooks
        answer = found.endpoints.replay(endpoint_id, after_position=body["after_position"])
        found.dispatcher.wake()
        return answer
