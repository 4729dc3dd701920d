"""What every console page shares: errors as pages, the layout's context."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from werkzeug.exceptions import HTTPException

from interface.console import words
from interface.console.blueprint import console, services
from interface.console.i18n import DEFAULT_LANGUAGE, LANGUAGES
from interface.console.oidc import OIDC_EXTENSION, OidcProvider
from interface.console.signed_in import current_principal
from interface.errors import describe_error


@console.context_processor
def layout_context() -> dict[str, Any]:
    return {
        "words": words,
        "principal": current_principal(),
        "languages": LANGUAGES,
        "lang": str(get_locale() or DEFAULT_LANGUAGE),
        "tax_rate": services().catalog.bundle.tax_rate_percent,
        "trial_days": services().catalog.bundle.trial_days,
        "oidc_name": _oidc_name(),
    }


def _oidc_name() -> str | None:
    """The configured OpenID Connect provider's name, for the sign-in button."""
    provider = current_app.extensions.get(OIDC_EXTENSION)
    return provider.settings.display_name if isinstance(provider, OidcProvider) else None


def refusal(error: Exception) -> dict[str, Any]:
    """A refusal as a page shows it: the one error mapping's status, code and details."""
    status, body, _headers = describe_error(error)
    answer = body["error"]
    code = str(answer["code"])
    return {
        "status": status,
        "code": code,
        "title": words.refusal_title(code),
        "message": answer["message"],
        "details": answer.get("details") or {},
        "request_id": answer.get("request_id"),
    }


@console.errorhandler(Exception)
def error_page(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException) and error.response is not None:
        return error.response  # a redirect raised with abort()
    shown = refusal(error)
    if isinstance(error, HTTPException) and error.description == "csrf":
        shown["code"], shown["title"] = "csrf", words.refusal_title("csrf")
    if shown["status"] == 401:
        return redirect(url_for("console.sign_in_page", next=request.full_path.rstrip("?")))
    return render_template("console/error.html", refusal=shown), shown["status"]
