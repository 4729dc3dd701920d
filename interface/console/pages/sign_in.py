"""Signing in (SPEC §13).

Outside ``SUITE_ENV=production`` a development sign-in: pick an organization,
then one of its people (or the operator), and the console mints the token the
API would take (``interface.auth.mint_token``). In production a token issued
elsewhere is pasted (verified like any API token), or, when ``SUITE_OIDC_ISSUER``
names one, the organization's OpenID Connect provider signs the user in
(``interface.console.oidc``), in any environment.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from application.errors import OrganizationNotFound
from domain.facts import OrganizationFacts
from interface.auth import mint_token
from interface.console import words
from interface.console.blueprint import console, services
from interface.console.i18n import LANGUAGE_COOKIE, LANGUAGE_COOKIE_MAX_AGE, LANGUAGES
from interface.console.oidc import (
    OIDC_EXTENSION,
    OidcError,
    OidcProvider,
    PendingSignIn,
    principal_claims,
)
from interface.console.signed_in import current_principal, remember_country, sign_in, sign_out
from interface.errors import ApiError

log = logging.getLogger(__name__)

#: The operator a development sign-in acts as.
DEVELOPMENT_OPERATOR = "ops-console"
DIRECTORY_PAGE = 50


def _production() -> bool:
    return bool(current_app.config.get("CONSOLE_PRODUCTION"))


def _safe_next(target: str | None) -> str | None:
    """Only a path of this console (never another site) is followed after sign-in."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return None


@console.get("/")
def index() -> ResponseReturnValue:
    principal = current_principal()
    if principal is None:
        return redirect(url_for("console.sign_in_page"))
    if principal.is_operator:
        return redirect(url_for("console.support_directory"))
    return redirect(url_for("console.home", organization_id=principal.organization_id))


@console.get("/sign-in")
def sign_in_page() -> ResponseReturnValue:
    if _production():
        return render_template(
            "console/sign_in_token.html", next=_safe_next(request.args.get("next"))
        )
    page = services().read_model.organizations(
        after=request.args.get("after") or None, limit=DIRECTORY_PAGE
    )
    return render_template(
        "console/sign_in.html",
        organizations=page["organizations"],
        next_page=page["next"],
        next=_safe_next(request.args.get("next")),
    )


def people(facts: OrganizationFacts) -> list[dict[str, Any]]:
    """The organization's people the facts name, each with the roles they hold."""
    roles: dict[str, list[tuple[str, str]]] = {facts.owner_user_id: [("owner", "")]}
    for admins in facts.service_admins:
        roles.setdefault(admins.super_admin, []).append(("super_admin", admins.service))
        for admin in admins.admins:
            roles.setdefault(admin, []).append(("admin", admins.service))
    return [{"user_id": user, "roles": held} for user, held in roles.items()]


@console.get("/sign-in/<uuid:organization_id>")
def sign_in_people(organization_id: UUID) -> ResponseReturnValue:
    if _production():
        abort(404)
    facts = services().app.facts(organization_id)
    return render_template(
        "console/sign_in_people.html",
        facts=facts,
        people=people(facts),
        next=_safe_next(request.args.get("next")),
    )


@console.post("/sign-in")
def sign_in_submit() -> ResponseReturnValue:
    secret = current_app.config["JWT_SECRET"]
    if _production():
        token = request.form.get("token", "").strip()
    elif request.form.get("as") == "operator":
        token = mint_token(secret, user_id=DEVELOPMENT_OPERATOR, operator=True)
    else:
        organization_id = UUID(request.form.get("organization_id", ""))
        user_id = request.form.get("user_id", "").strip()
        if not user_id:
            abort(400)
        token = mint_token(secret, user_id=user_id, organization_id=str(organization_id))
    try:
        return _signed_in(token, request.form.get("next"))
    except ApiError:
        return render_template("console/sign_in_token.html", invalid=True), 401


def _signed_in(token: str, next_path: str | None) -> ResponseReturnValue:
    """Keep ``token`` in a fresh session and go where the user was going (or home)."""
    principal = sign_in(token)
    if principal.organization_id is not None:
        remember_country(services().app.facts(UUID(principal.organization_id)).country)
    target = _safe_next(next_path)
    if target:
        return redirect(target)
    if principal.is_operator:
        return redirect(url_for("console.support_directory"))
    return redirect(url_for("console.home", organization_id=principal.organization_id))


@console.post("/sign-out")
def sign_out_submit() -> ResponseReturnValue:
    sign_out()
    return redirect(url_for("console.sign_in_page"))


@console.post("/language")
def choose_language() -> ResponseReturnValue:
    language = request.form.get("language")
    response = redirect(_safe_next(request.form.get("next")) or url_for("console.index"))
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            path="/console",
            httponly=True,
            samesite="Lax",
            secure=_production(),
        )
    return response


# -- OpenID Connect (SPEC §13: production signs in with a provider, or a pasted token) --

OIDC_SESSION_KEY = "oidc"
#: Why a provider's sign-in failed, as the page answers it (anything else: 401).
OIDC_STATUS = {
    "provider_unreachable": 502,
    "provider_answer_invalid": 502,
    "issuer_mismatch": 502,
    "pkce_not_supported": 502,
    "no_organization": 403,
    "unknown_organization": 403,
    "no_sign_in_started": 400,
}


def oidc_provider() -> OidcProvider | None:
    found = current_app.extensions.get(OIDC_EXTENSION)
    return found if isinstance(found, OidcProvider) else None


def _oidc_refused(error: OidcError) -> ResponseReturnValue:
    log.warning("console OIDC sign-in refused: %s", error)
    template = "console/sign_in_token.html" if _production() else "console/sign_in.html"
    context: dict[str, Any] = {"oidc_error": words.oidc_refusal(error.reason)}
    if not _production():
        page = services().read_model.organizations(limit=DIRECTORY_PAGE)
        context.update(organizations=page["organizations"], next_page=page["next"])
    return render_template(template, **context), OIDC_STATUS.get(error.reason, 401)


@console.get("/sign-in/oidc")
def oidc_begin() -> ResponseReturnValue:
    """Off to the provider: PKCE, ``state`` and ``nonce`` kept in the session."""
    provider = oidc_provider()
    if provider is None:
        abort(404)
    redirect_uri = provider.settings.redirect_uri or url_for(
        "console.oidc_callback", _external=True
    )
    try:
        target, pending = provider.begin(redirect_uri, _safe_next(request.args.get("next")))
    except OidcError as error:
        return _oidc_refused(error)
    session[OIDC_SESSION_KEY] = pending.to_dict()
    return redirect(target)


@console.get("/sign-in/oidc/callback")
def oidc_callback() -> ResponseReturnValue:
    """Back from the provider: verify, map the claims, keep a service token."""
    provider = oidc_provider()
    if provider is None:
        abort(404)
    pending = PendingSignIn.from_dict(session.pop(OIDC_SESSION_KEY, None))
    try:
        if pending is None:  # no sign-in started here (or it was already used)
            raise OidcError("no_sign_in_started")
        claims = provider.finish(pending, request.args.to_dict())
        mapped = principal_claims(provider.settings, claims)
        if mapped.organization_id is not None:
            _registered(mapped.organization_id)
    except OidcError as error:
        return _oidc_refused(error)
    secret = current_app.config["JWT_SECRET"]
    ttl = provider.settings.session_seconds
    if mapped.is_operator:
        token = mint_token(secret, user_id=mapped.user_id, operator=True, ttl_seconds=ttl)
    else:
        token = mint_token(
            secret, user_id=mapped.user_id, organization_id=mapped.organization_id, ttl_seconds=ttl
        )
    log.info("console OIDC sign-in: %s (operator=%s)", mapped.user_id, mapped.is_operator)
    return _signed_in(token, pending.next)


def _registered(organization_id: str) -> None:
    """The claim must name an organization of this service (else: 403, not a 404 later)."""
    try:
        services().app.facts(UUID(organization_id))
    except (ValueError, OrganizationNotFound):
        raise OidcError("unknown_organization", organization_id) from None
