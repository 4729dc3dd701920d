"""The one place where errors become HTTP answers.

Every error is JSON ``{"error": {"code", "message", "details", "request_id"}}``
— never HTML, never a stack trace. Domain refusals are mapped by their kind
(not allowed 403, state conflict 409, invalid request 422, not found 404),
payment refusals by their own status (402, 502); the interface's own errors
(:class:`ApiError`: 400, 401, 403, 415, ...) carry their status. An
unexpected exception is a 500 whose trace goes to the log with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from application.errors import ViewNotCaughtUp
from application.ids import random_id
from application.payments import PaymentError
from domain.card_numbers import contains_card_number
from domain.errors import DomainError, InvalidRequest, NotAllowed, NotFound, StateConflict

log = logging.getLogger("suitesub.api")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the header as WSGI hands it over


class ApiError(Exception):
    """An error of the HTTP layer itself (headers, body format, authentication)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


_KIND_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotAllowed, 403),
    (StateConflict, 409),
    (InvalidRequest, 422),
    (NotFound, 404),
)

#: Codes for HTTP errors raised by the framework (routing, webargs) and by
#: gunicorn itself (interface/gunicorn_worker.py).
HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "validation_failed",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def request_id() -> str:
    """This request's id: the caller's ``X-Request-ID`` if sane, else a new one.

    Sane: 1 to 64 ASCII letters, digits and dashes, holding no card number —
    the id is echoed in every answer and written to the logs.
    """
    # One look-up of ``g`` and the header straight from the WSGI environ (what
    # ``request.headers`` reads): each proxy access is a context search, and
    # every answer asks for its id (benchmark access_read_http).
    store = g._get_current_object()
    existing = store.get("request_id")
    if existing:
        return str(existing)
    supplied = request.environ.get(_REQUEST_ID_ENVIRON, "")
    if (
        supplied
        and len(supplied) <= 64
        and supplied.replace("-", "").isalnum()
        and supplied.isascii()
        and not contains_card_number(supplied)
    ):
        chosen = str(supplied)
    else:
        # 128 random bits, as uuid4 had; never a run the log masker would cut out.
        chosen = random_id("req_")
    store.request_id = chosen
    return chosen


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": request_id(),
        }
    }


def describe_error(error: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for an error; the one mapping of errors to HTTP."""
    if isinstance(error, ApiError):
        return error.status, error_body(error.code, error.message, error.details), error.headers
    if isinstance(error, PaymentError):
        return error.status, error_body(error.code, error.message, error.details), {}
    if isinstance(error, ViewNotCaughtUp):
        # Read-your-writes could not be honoured in time: never a stale view.
        headers = {"Retry-After": str(error.retry_after)}
        return 503, error_body(error.code, error.message, error.details), headers
    if isinstance(error, DomainError):
        for kind, status in _KIND_STATUS:
            if isinstance(error, kind):
                return status, error_body(error.code, error.message, error.details), {}
        return 409, error_body(error.code, error.message, error.details), {}
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.error(
        "unexpected error (request_id=%s) on %s %s",
        request_id(),
        request.method,
        request.path,
        exc_info=error,
    )
    body = error_body("internal_error", "Something went wrong on our side; it has been logged.")
    return 500, body, {}


def _http_error(error: HTTPException) -> tuple[int, dict[str, Any], dict[str, str]]:
    status = error.code or 500
    code = HTTP_ERROR_CODES.get(status, "http_error")
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    data = getattr(error, "data", None)
    if isinstance(data, dict) and "messages" in data:
        # webargs/marshmallow validation: field-level messages per location.
        details["fields"] = _flatten_messages(data["messages"])
        message = "The request is invalid; see details.fields."
    else:
        message = error.description or error.name
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        allowed = sorted(error.valid_methods)  # type: ignore[attr-defined]
        details["allowed_methods"] = allowed
        headers["Allow"] = ", ".join(allowed)
    return status, error_body(code, message, details), headers


def _flatten_messages(messages: Any) -> dict[str, Any]:
    """``{"json": {"seats": [...]}}`` → ``{"seats": [...]}`` (location dropped)."""
    if not isinstance(messages, dict):
        return {"_request": messages}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            for name, problems in fields.items():
                key = name if location in ("json", "view_args") else f"{location}.{name}"
                flat[key] = problems
        else:
            flat[str(location)] = fields
    return flat


def error_response(error: Exception) -> Response:
    status, body, headers = describe_error(error)
    response = jsonify(body)
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Route every error, of any kind, through :func:`error_response`."""
    app.register_error_handler(Exception, error_response)
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(DomainError, error_response)

    @app.after_request
    def add_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response
