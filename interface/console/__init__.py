"""The web console (SPEC §13): the article's screens, server-rendered, under ``/console/``.

Pages call the same application services and queries as the ``/v1`` routes
(``Services.app``, ``checkouts``, ``read_model``, ``application.audit``); no
rule is decided here, in a template or in JavaScript. Everything the browser
loads is served from this package's ``static/`` folder.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from interface.console import i18n, security
from interface.console.blueprint import console
from interface.console.oidc import OIDC_EXTENSION, OidcProvider, OidcSettings
from interface.console.pages import (  # noqa: F401  (routes register)
    admin,
    contract,
    invoices,
    sign_in,
    support,
)

CONSOLE_PREFIX = "/console"
security.protect(console)  # once, before any app registers the blueprint


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the signer for a request
    that sends no session cookie — every API request (benchmark
    access_read_http: a twentieth of a ``GET …/access``). Such a request gets
    the empty session Flask would give it; a cookie is read as before. A request
    without any ``Cookie`` header is told apart without parsing its cookies."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to do for an empty session nobody read or changed (every API
        request): Flask's own would set, delete and vary nothing, after reading
        seven cookie settings."""
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)


def init_app(app: Flask, *, production: bool, oidc: OidcSettings | None = None) -> None:
    """Register the console on ``app`` (after the JWT secret is configured); with
    ``oidc``, its provider signs users in too."""
    secret: str = app.config["JWT_SECRET"]
    # Sessions are signed with a key derived from the token secret: one secret
    # to configure, and a session cookie can never be replayed as a token.
    app.secret_key = hmac.new(secret.encode(), b"suitesub-console-session", hashlib.sha256).digest()
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="suitesub_console",
        SESSION_COOKIE_PATH=CONSOLE_PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        CONSOLE_PRODUCTION=production,
    )
    if oidc is not None:
        app.extensions[OIDC_EXTENSION] = OidcProvider(oidc)
    i18n.init_app(app)
    app.register_blueprint(console, url_prefix=CONSOLE_PREFIX)
