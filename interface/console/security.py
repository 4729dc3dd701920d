"""What protects every console page: CSRF tokens, the CSP and friends.

- CSRF: a random token per session, in a hidden field of every form; a POST
  without the session's token is refused before its view runs. (The session
  cookie is also ``SameSite=Lax``, so other sites' forms never carry it.)
- CSP: scripts, styles, images and fonts from this origin only, no inline
  script or style at all (so no nonce is needed), no framing, forms post only
  here.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, Response, abort, request, session

from interface.card_guard import card_data_locations
from interface.errors import ApiError

CSRF_FIELD = "csrf_token"
CSRF_SESSION_KEY = "csrf"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def renew_csrf_token() -> None:
    """A new token at sign-in and sign-out: a token seen before cannot be reused."""
    session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)


def check_csrf() -> None:
    if request.method in SAFE_METHODS:
        return
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, description="csrf")


#: Fields never scanned for card numbers: the pasted sign-in token, and the
#: ``code`` and ``state`` an OpenID Connect provider sends back, are random text
#: whose digit runs would now and then look like one.
NOT_CARD_DATA_FIELDS = frozenset({"token", CSRF_FIELD, "code", "state"})


def refuse_card_data() -> None:
    """The API's card-data guard, on every form: a card number typed anywhere (the
    company name, say) is refused before any page sees it, and never stored."""
    fields = {
        name: values
        for source in (request.args, request.form)
        for name, values in source.to_dict(flat=False).items()
        if name not in NOT_CARD_DATA_FIELDS
    }
    if any(card_data_locations(fields)):
        raise ApiError(
            422,
            "raw_card_data_not_accepted",
            "Card numbers, CVCs and expiry dates are never accepted: use the card field.",
        )


def add_security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/console/static/"):
        # Pages show an organization's contract and tokens' holders: never cached.
        response.headers["Cache-Control"] = "no-store"
    return response


def protect(blueprint: Blueprint) -> None:
    blueprint.before_request(refuse_card_data)
    blueprint.before_request(check_csrf)
    blueprint.after_request(add_security_headers)
    blueprint.context_processor(lambda: {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD})
