"""Signing in (SPEC §13).

Outside ``SUITE_ENV=production`` a development sign-in: pick an organization,
then one of its people (or the operator), and the console mints the token the
API would take (``interface.auth.mint_token``). In production a token issued
elsewhere is pasted; it is verified like any API token.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.facts import OrganizationFacts
from interface.auth import mint_token
from interface.console.blueprint import console, services
from interface.console.i18n import LANGUAGE_COOKIE, LANGUAGE_COOKIE_MAX_AGE, LANGUAGES
from interface.console.signed_in import current_principal, remember_country, sign_in, sign_out
from interface.errors import ApiError

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
        principal = sign_in(token)
    except ApiError:
        return render_template("console/sign_in_token.html", invalid=True), 401
    if principal.organization_id is not None:
        remember_country(services().app.facts(UUID(principal.organization_id)).country)
    target = _safe_next(request.form.get("next"))
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
