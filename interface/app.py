"""The Flask application factory.

``create_app(config)`` wires the services (through ``application.bootstrap``,
the composition root), the request guard, the one error mapper and the
blueprints. Configuration comes from ``config`` first, then the environment:

| key | environment | meaning |
|---|---|---|
| ``DATABASE_URL`` | ``SUITE_DATABASE_URL`` | memory://, sqlite:///..., postgresql://... |
| ``JWT_SECRET`` | ``SUITE_JWT_SECRET`` | HS256 secret (dev secret under var/ if unset) |
| ``JWT_PUBLIC_KEY`` | ``SUITE_JWT_PUBLIC_KEY_FILE`` | PEM public key: RS256 tokens accepted too |
| ``ENV`` | ``SUITE_ENV`` | ``production`` refuses to start without a secret |
| ``TEST_CLOCK`` | ``SUITE_TEST_CLOCK`` | ``1`` enables ``/v1/test-clock`` |
| ``VAR_DIR`` | ``SUITE_VAR_DIR`` | where the dev secret lives (default ``var``) |
| ``OIDC`` | ``SUITE_OIDC_*`` | the console's OpenID Connect provider (``OidcSettings``; none if |
|   |   | ``SUITE_OIDC_ISSUER`` is unset; see ``interface/console/oidc.py``) |
| ``CLOCK`` | — | the base clock (tests inject a ManualClock) |
| ``CATALOG`` | — | a Catalog (default: ``SUITE_CATALOG`` or the packaged one) |
| ``GATEWAY_FACTORY`` | — | builds the payment gateway (tests inject fakes) |
| ``SERVICES`` | — | ready-made Services (tests sharing one store) |
| ``WEBHOOKS_IN_PROCESS`` | — | deliver webhooks from this process (default: services built |
|   |   | here and the API following the log itself, as on the embedded default) |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_smorest import Api
from flask_smorest.spec.plugins import unicodeconverter2paramschema
from werkzeug.routing import UnicodeConverter

from application.bootstrap import Services, build_services
from application.settings import env_flag
from domain.text import SAFE_TEXT_DESCRIPTION, SAFE_TEXT_PATTERN
from interface import console, errors, log_masking, request_guard
from interface.auth import resolve_secret
from interface.console.oidc import OidcSettings
from interface.routes import (
    health,
    invoices,
    organizations,
    plan_change,
    subscription,
    test_clock,
    webhooks,
)
from interface.routes.documentation import docs
from interface.schemas import (
    TEST_CLOCK_CHANGE_EXTRAS,
    ErrorAnswerSchema,
    TestClockChangeSchema,
)

MAX_BODY_BYTES = 64 * 1024


class SuiteFlask(Flask):
    """Flask, remembering which callables are plain functions.

    Flask asks :meth:`ensure_sync` (its documented override point) for every
    hook, view and handler of every request, and each answer inspected the
    function again: about a fiftieth of a ``GET …/access`` (benchmark
    access_read_http). A function is plain or ``async`` for its lifetime.
    """

    PLAIN_REMEMBERED = 1024  # then forgotten at once (partials are new objects)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: set[Any] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)  # a bound method: its function
        try:
            if key in self._plain:
                return func
        except TypeError:  # pragma: no cover - an unhashable callable object
            return super().ensure_sync(func)
        synced: Callable[..., Any] = super().ensure_sync(func)
        if synced is func:
            if len(self._plain) >= self.PLAIN_REMEMBERED:
                self._plain.clear()
            self._plain.add(key)
        return synced


class SuiteApi(Api):  # type: ignore[misc]
    """flask-smorest, documenting every error with the service's one error shape."""

    ERROR_SCHEMA = ErrorAnswerSchema


def _text_path_parameter(converter: UnicodeConverter) -> dict[str, Any]:
    """A ``<string:...>`` path segment, documented with the rule every text follows."""
    return {
        **unicodeconverter2paramschema(converter),
        "pattern": SAFE_TEXT_PATTERN,
        "description": SAFE_TEXT_DESCRIPTION,
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = dict(config or {})
    app = SuiteFlask("suitesub")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep the SPEC's field order
    app.config.update(
        API_TITLE="Suite Subscriptions",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
            "info": {
                "description": "Trials, upgrades, credits and access views of the CRM Plus "
                "suite bundle. See docs/api.md for a walk-through."
            },
        },
    )
    environment = settings.get("ENV", os.environ.get("SUITE_ENV"))
    var_dir = Path(settings.get("VAR_DIR", os.environ.get("SUITE_VAR_DIR", "var")))
    app.config["JWT_SECRET"] = resolve_secret(
        settings.get("JWT_SECRET", os.environ.get("SUITE_JWT_SECRET")),
        environment=environment,
        var_dir=var_dir,
    )
    public_key_file = os.environ.get("SUITE_JWT_PUBLIC_KEY_FILE")
    app.config["JWT_PUBLIC_KEY"] = settings.get(
        "JWT_PUBLIC_KEY", Path(public_key_file).read_text() if public_key_file else None
    )
    services: Services = settings.get("SERVICES") or build_services(
        settings.get("DATABASE_URL"),
        clock=settings.get("CLOCK"),
        catalog=settings.get("CATALOG"),
        test_clock=env_flag(settings.get("TEST_CLOCK", os.environ.get("SUITE_TEST_CLOCK", ""))),
        gateway_factory=settings.get("GATEWAY_FACTORY"),
    )
    app.extensions["suitesub"] = services

    api = SuiteApi(app)
    api.register_converter(UnicodeConverter, _text_path_parameter)
    api.register_blueprint(organizations.blp)
    api.register_blueprint(invoices.blp)
    api.register_blueprint(plan_change.blp)
    api.register_blueprint(subscription.blp)
    api.register_blueprint(webhooks.feed)
    api.register_blueprint(webhooks.blp)
    if services.test_clock is not None:
        # Off, the paths do not exist at all: 404 for everyone, absent from the OpenAPI.
        api.spec.components.schema(
            "TestClockChange", TEST_CLOCK_CHANGE_EXTRAS, schema=TestClockChangeSchema
        )
        api.register_blueprint(test_clock.blp)
    api.register_blueprint(health.blp)
    app.register_blueprint(docs)
    console.init_app(
        app,
        production=(environment or "").lower() == "production",
        oidc=settings["OIDC"] if "OIDC" in settings else OidcSettings.from_env(os.environ),
    )
    request_guard.init_app(app)
    log_masking.init_app(app)
    if settings.get("WEBHOOKS_IN_PROCESS", "SERVICES" not in settings):
        _deliver_webhooks_in_process(app, services)
    errors.init_app(app)  # after Api(), so it replaces flask-smorest's handler
    return app


def _deliver_webhooks_in_process(app: Flask, services: Services) -> None:
    """On the embedded default the API delivers webhooks, as it keeps its views.

    Started at the first request of each process, not here: gunicorn may
    build the app before it forks its workers, and threads do not survive
    a fork.
    """
    if not services.read_model.settings.follow_on_read:
        return  # ``suitesub worker`` delivers

    def start() -> None:
        services.webhooks.start_in_background()

    app.before_request(start)
