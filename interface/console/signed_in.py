"""Who is signed in to the console: a token kept in the session cookie.

The session holds the same bearer token the API takes, verified on every
request exactly as ``/v1`` verifies it (``interface.auth.authenticate``), so
a page can do nothing its holder could not do through the API.
"""

from __future__ import annotations

from uuid import UUID

from flask import abort, current_app, redirect, request, session, url_for

from interface.auth import Principal, authenticate
from interface.console.i18n import COUNTRY_SESSION_KEY
from interface.console.security import renew_csrf_token
from interface.errors import ApiError

TOKEN_SESSION_KEY = "token"


def current_principal() -> Principal | None:
    token = session.get(TOKEN_SESSION_KEY)
    if not isinstance(token, str):
        return None
    try:
        return authenticate(
            f"Bearer {token}",
            current_app.config["JWT_SECRET"],
            current_app.config.get("JWT_PUBLIC_KEY"),
        )
    except ApiError:  # expired or no longer valid: signed out
        session.pop(TOKEN_SESSION_KEY, None)
        return None


def sign_in(token: str) -> Principal:
    """Keep ``token`` in a fresh session (a 401 ``ApiError`` if it is not valid)."""
    principal = authenticate(
        f"Bearer {token}",
        current_app.config["JWT_SECRET"],
        current_app.config.get("JWT_PUBLIC_KEY"),
    )
    session.clear()
    session[TOKEN_SESSION_KEY] = token
    renew_csrf_token()
    return principal


def remember_country(country: str) -> None:
    """The organization's country picks the default language (``i18n``)."""
    session[COUNTRY_SESSION_KEY] = country


def sign_out() -> None:
    session.clear()
    renew_csrf_token()


def _to_sign_in() -> None:
    abort(redirect(url_for("console.sign_in_page", next=request.full_path.rstrip("?"))))


def organization_user(organization_id: UUID) -> Principal:
    """The signed-in user acting in ``organization_id`` (sign-in first; 404 for others)."""
    principal = current_principal()
    if principal is None:
        _to_sign_in()
    assert principal is not None
    if principal.is_operator:
        abort(redirect(url_for("console.support_organization", organization_id=organization_id)))
    principal.require_organization(organization_id)
    return principal


def operator() -> Principal:
    """The signed-in operator (sign-in first; 403 for users)."""
    principal = current_principal()
    if principal is None:
        _to_sign_in()
    assert principal is not None
    principal.require_operator()
    return principal
