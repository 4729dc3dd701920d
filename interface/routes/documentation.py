"""OpenAPI extras and the ``/docs`` page (Swagger UI served from the installed
``swagger_ui_bundle`` package, so the docs work offline — no CDN)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from interface.routes.blueprint import ApiBlueprint
from interface.schemas import ErrorAnswerSchema

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, missing or invalid Idempotency-Key",
    401: "No token, or an invalid or expired one",
    402: "Payment refused: card_declined, insufficient_funds, invalid_payment_token",
    403: "Not allowed (operator only, or the domain's rights rules)",
    404: "Unknown organization (or another tenant's), unknown service",
    409: "State conflict (see docs/api.md for codes)",
    415: "The body is not JSON",
    422: "Validation failed (field-level details), or raw card data",
    502: "payment_gateway_error: nothing was charged, safe to retry",
    503: "view_not_caught_up: min_position not reached in time; retry after Retry-After",
}

_ALWAYS = (401, 500)
#: Only its decorators are used: the error answers are documented per view.
_documenting = ApiBlueprint("error-answers", __name__)


def errors(*statuses: int) -> Callable[[F], F]:
    """Document a view's error answers (all share the one error shape)."""

    def decorate(view: F) -> F:
        documented = set(statuses) | set(_ALWAYS)
        if getattr(view, "__name__", "") in ("post", "put"):
            documented |= {400, 415, 422}
        documenting = view
        for status in sorted(documented):
            documenting = _documenting.alt_response(
                status,
                schema=ErrorAnswerSchema,
                description=_ERROR_DESCRIPTIONS.get(status, "Unexpected error"),
            )(documenting)
        # alt_response only documents, yet each of its wrappers runs on every
        # request (a call through ensure_sync): keep the documentation they
        # built on the view itself and call the view directly (benchmark:
        # access_read_http, docs/performance.md item 12).
        view._apidoc = documenting._apidoc  # type: ignore[attr-defined]
        return view

    return decorate


docs = Blueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Suite Subscriptions API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


@docs.get("/docs")
def docs_page() -> Response:
    return Response(_PAGE, mimetype="text/html")


@docs.get("/docs/assets/<path:filename>")
def docs_asset(filename: str) -> Response:
    if filename not in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-bundle.js.map"):
        abort(404)
    return send_from_directory(str(swagger_ui_path), filename)
