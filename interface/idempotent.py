"""Running a command under an ``Idempotency-Key`` header (SPEC §6).

Which answers are stored (and replayed) and which release the key:

- stored: successes, and final refusals (400, 402, 403, 404, 422) — sending
  the same request again would get the same answer, so it is replayed, as
  payment platforms do; a declined card is *not* retried by replaying;
- released: 409 state conflicts (``checkout_in_progress``, ``quote_changed``:
  the situation may change), 5xx and 502 ``payment_gateway_error`` (nothing
  was charged; retrying with the same key may succeed), and any crash.

The upgrade also answers a key's outcome from the log when no answer is
stored (``application/upgrade.py``), so a lost answer is never redone.

Requests refused before the view (401, 400 malformed JSON, 415, 422 schema
validation, card data) never reach this and never consume a key.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, request

from application.bootstrap import Services
from application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from interface.errors import ApiError, describe_error
from interface.request_guard import current_principal, json_body

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")
REPLAYED_HEADER = "Idempotent-Replayed"
F = TypeVar("F", bound=Callable[..., Any])


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _stored(status: int) -> bool:
    return status < 500 and status != 409


def _json_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def idempotency_key(*, required: bool) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        if required:
            raise ApiError(
                400,
                "idempotency_key_required",
                "Send an Idempotency-Key header (a new random value per purchase, "
                "reused only to retry the same request).",
            )
        return None
    if not KEY_PATTERN.fullmatch(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(a UUID is a good choice).",
        )
    return key


def idempotency_header(*, required: bool) -> dict[str, Any]:
    """The header as an OpenAPI parameter (``@blp.doc(parameters=[...])``)."""
    return {
        "in": "header",
        "name": IDEMPOTENCY_HEADER,
        "required": required,
        "description": "A new random value per request; resend it only to retry the same "
        "request. Required on the upgrade.",
        "schema": {"type": "string", "pattern": f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"},
    }


def idempotent(*, required: bool = False) -> Callable[[F], F]:
    """Run a view once per ``Idempotency-Key``: replay its finished answer, never redo it.

    Put it between ``@blp.arguments`` and ``@blp.response``: the view and its
    response schema build the answer as for any route; this stores (or
    releases) that finished answer, or the error answer the view raised.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Response:
            organization_id = kwargs.get("organization_id")
            scope = None if organization_id is None else str(organization_id)
            return _run_once(scope, required, lambda: view(*args, **kwargs))

        return cast(F, run)

    return decorate


def _run_once(
    organization_id: str | None, required: bool, answer: Callable[[], Response]
) -> Response:
    key = idempotency_key(required=required)
    if key is None:
        return answer()
    services: Services = current_app.extensions["suitesub"]
    claim = services.idempotency.claim(
        scope=organization_id or "-",
        key=key,
        fingerprint=request_fingerprint(
            request.method, request.path, json_body(), current_principal().user_id
        ),
        organization_id=organization_id,
    )
    if claim.replay is not None:
        return _json_response(claim.replay.status, claim.replay.body, {REPLAYED_HEADER: "true"})
    try:
        response = answer()
    except Exception as error:
        status, body, headers = describe_error(error)
        if _stored(status):
            services.idempotency.finish(claim, status, _dumps(body))
        else:
            services.idempotency.release(claim)
        return _json_response(status, _dumps(body), headers)
    services.idempotency.finish(claim, response.status_code, response.get_data(as_text=True))
    return response
