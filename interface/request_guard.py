"""What every request goes through before its view runs.

0. every request, any path: the card-data guard on the path, the query
   string and the headers (422 ``raw_card_data_not_accepted``) — before
   anything else reads them, so a card number reaches no log and no table;

then every ``/v1`` request:

1. authentication (401), so nothing about a body is revealed to a stranger;
   then tenancy: a user token naming another organization gets 404 on
   every route of that organization, whatever the body; then operator-only
   methods (a view's ``operator_only``) give users 403;
2. for bodies: at most ``MAX_CONTENT_LENGTH`` bytes however they are sent
   (413, chunked bodies included), JSON only (415), well-formed and at most
   :data:`MAX_JSON_DEPTH` levels deep (400);
3. the card-data guard on the body (422 ``raw_card_data_not_accepted``) —
   before the schemas, so a card number is refused as card data, not as an
   unknown field;
4. the text guard (422 ``validation_failed`` naming the field): no control
   character or lone surrogate in any path segment, query parameter or body
   string (``domain.text``: the domain refuses them again, so no other path
   records one either).

Bodies are parsed here once and kept on ``g.json_body``; they are never logged.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Flask, current_app, g, request

from domain.text import refuse_unsafe_text
from interface.auth import Principal, authenticate
from interface.card_guard import refuse_card_data_in_body, refuse_card_data_outside_the_body
from interface.errors import ApiError

API_PREFIX = "/v1/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: The deepest nesting a body may have (objects and arrays); the deepest real
#: body (an upgrade's add-ons) has 3.
MAX_JSON_DEPTH = 32


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
    # once: each proxy look-up costs a context search (werkzeug's LocalProxy
    # method, absent from flask's typing of the proxy as a Request).
    req = request._get_current_object()  # type: ignore[attr-defined]
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
    if req.view_args:
        refuse_unsafe_text({k: v for k, v in req.view_args.items() if isinstance(v, str)})
    if req.query_string:
        refuse_unsafe_text(
            {name: v[0] if len(v) == 1 else v for name, v in req.args.lists()}, "query"
        )
    if request.method not in BODY_METHODS:
        return
    raw = request.get_data(cache=True)
    _refuse_cut_body(raw)
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
    except RecursionError:  # nested deeper than the parser goes
        _refuse_deep_json()
    if _deeper_than(body, MAX_JSON_DEPTH):
        _refuse_deep_json()
    refuse_card_data_in_body(body)
    refuse_unsafe_text(body)
    g.json_body = body


def _refuse_cut_body(raw: bytes) -> None:
    """413 for a body without ``Content-Length`` (chunked) longer than the limit.

    Werkzeug stops reading such a body at ``MAX_CONTENT_LENGTH`` and hands
    over what it read, so an over-long body would be parsed cut short (a 400,
    or worse, a shorter valid document): one more byte from the server's
    stream tells an over-long body from one of exactly the limit.
    """
    limit = request.max_content_length
    if limit is None or request.content_length is not None or len(raw) < limit:
        return
    if request.environ["wsgi.input"].read(1):
        raise ApiError(
            413,
            "request_too_large",
            f"The body is larger than {limit} bytes.",
            {"max_bytes": limit},
        )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _refuse_deep_json() -> NoReturn:
    raise ApiError(
        400,
        "json_too_deep",
        f"The body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep.",
        {"max_depth": MAX_JSON_DEPTH},
    )


def init_app(app: Flask) -> None:
    app.before_request(guard_request)
