"""What every request goes through before its view runs.

0. every request, any path: the card-data guard on the path, the query
   string and the headers (422 ``raw_card_data_not_accepted``) — before
   anything else reads them, so a card number reaches no log and no table;

then every ``/v1`` request:

1. authentication (401), so nothing about a body is revealed to a stranger;
   then tenancy: a user token naming another organization gets 404 on
   every route of that organization, whatever the body; then operator-only
   methods (a view's ``operator_only``) give users 403;
2. for bodies: JSON only (415), well-formed (400);
3. the card-data guard on the body (422 ``raw_card_data_not_accepted``) —
   before the schemas, so a card number is refused as card data, not as an
   unknown field.

Bodies are parsed here once and kept on ``g.json_body``; they are never logged.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app, g, request

from interface.auth import Principal, authenticate
from interface.card_guard import refuse_card_data_in_body, refuse_card_data_outside_the_body
from interface.errors import ApiError

API_PREFIX = "/v1/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:  # a /v1 route always has one; guard for misuse
        raise ApiError(401, "authentication_required", "Send Authorization: Bearer <token>.")
    assert isinstance(principal, Principal)
    return principal


def json_body() -> Any:
    return g.get("json_body", {})


def _is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def guard_request() -> None:
    req = request._get_current_object()  # once: each proxy look-up costs a context search
    refuse_card_data_outside_the_body(req)
    if not req.path.startswith(API_PREFIX) or req.routing_exception is not None:
        return  # unknown routes and methods get their 404/405 first
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    principal = authenticate(
        req.headers.get("Authorization"),
        app.config["JWT_SECRET"],
        app.config.get("JWT_PUBLIC_KEY"),
    )
    g.principal = principal
    organization_id = (req.view_args or {}).get("organization_id")
    if organization_id is not None:
        principal.require_organization(organization_id)
    view_class = getattr(app.view_functions.get(req.endpoint or ""), "view_class", None)
    if req.method in getattr(view_class, "operator_only", ()):
        principal.require_operator()
    if request.method not in BODY_METHODS:
        return
    raw = request.get_data(cache=True)
    if not raw.strip():
        g.json_body = {}
        return
    if not _is_json_mimetype(request.mimetype):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
            {"content_type": request.mimetype or None},
        )
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed_json", "The body is not valid JSON.") from None
    refuse_card_data_in_body(body)
    g.json_body = body


def init_app(app: Flask) -> None:
    app.before_request(guard_request)
