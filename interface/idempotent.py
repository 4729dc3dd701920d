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

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Response, request
from marshmallow import Schema

from application.bootstrap import Services
from application.idempotency import MAX_KEY_LENGTH, request_fingerprint
from interface.errors import ApiError, describe_error
from interface.request_guard import current_principal, json_body

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")
REPLAYED_HEADER = "Idempotent-Replayed"


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


def run_idempotently(
    services: Services,
    *,
    organization_id: str | None,
    status: int,
    schema: Schema,
    work: Callable[[], dict[str, Any]],
    required: bool = False,
) -> Response:
    """Do ``work`` once per key; answer ``status`` with ``schema``'s dump of its result."""
    key = idempotency_key(required=required)
    if key is None:
        return _json_response(status, _dumps(schema.dump(work())))
    principal = current_principal()
    claim = services.idempotency.claim(
        scope=organization_id or "-",
        key=key,
        fingerprint=request_fingerprint(
            request.method, request.path, json_body(), principal.user_id
        ),
        organization_id=organization_id,
    )
    if claim.replay is not None:
        return _json_response(claim.replay.status, claim.replay.body, {REPLAYED_HEADER: "true"})
    try:
        body = _dumps(schema.dump(work()))
    except Exception as error:
        answer_status, answer, headers = describe_error(error)
        if _stored(answer_status):
            services.idempotency.finish(claim, answer_status, _dumps(answer))
        else:
            services.idempotency.release(claim)
        return _json_response(answer_status, _dumps(answer), headers)
    services.idempotency.finish(claim, status, body)
    return _json_response(status, body)
