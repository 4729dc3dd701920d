"""``suitesub serve``, ``suitesub token`` and ``suitesub reconcile``."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from application.settings import is_test_clock_enabled
from interface.cli import main
from interface.cli.services import CommandFailed, command_services, open_services

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _var_dir() -> Path:
    return Path(os.environ.get("SUITE_VAR_DIR", "var"))


def _secret() -> str:
    from interface.auth import MissingSecretError, resolve_secret

    try:
        return resolve_secret(
            os.environ.get("SUITE_JWT_SECRET"),
            environment=os.environ.get("SUITE_ENV"),
            var_dir=_var_dir(),
        )
    except MissingSecretError as error:
        raise CommandFailed(str(error)) from None


def _oidc_settings() -> None:
    """The console's OpenID Connect settings, checked before gunicorn starts."""
    from interface.console.oidc import OidcConfigurationError, OidcSettings

    try:
        OidcSettings.from_env(os.environ)
    except OidcConfigurationError as error:
        raise CommandFailed(str(error)) from None


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Say plainly that the port is taken, instead of gunicorn's retries and traceback."""
    with socket.socket() as probe:
        # As gunicorn binds: a port left in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            msg = (
                f"Cannot listen on {host}:{port}: {error.strerror or error}. Another server "
                f"may be running there: choose another port with --port N "
                f"(make run PORT=N)."
            )
            raise CommandFailed(msg) from None


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--test-clock",
    is_flag=True,
    help="Enable /v1/test-clock (same as SUITE_TEST_CLOCK=1). Never in production.",
)
def serve(host: str, port: int, workers: int, test_clock: bool) -> None:
    """Run the HTTP API under gunicorn (SQLite under ./var/ unless SUITE_DATABASE_URL)."""
    from gunicorn.app.base import BaseApplication

    if test_clock:
        os.environ["SUITE_TEST_CLOCK"] = "1"
    _refuse_a_taken_port(host, port)
    # Fail fast, before forking, on a bad URL or an unreachable store; this also
    # creates the tables once instead of in every worker at the same moment.
    services = open_services()
    settings = services.settings
    services.close()
    _secret()  # create the dev secret once, before the workers race for it
    _oidc_settings()
    base_url = f"http://{host}:{port}"
    # As invoked (e.g. .venv/bin/suitesub under `make run`), so the hint can be pasted.
    me = sys.argv[0] if "/" in sys.argv[0] else "suitesub"
    clock = "on (POST /v1/test-clock)" if is_test_clock_enabled() else "off"
    click.echo(
        f"Suite Subscriptions API on {base_url} ({workers} workers, store: {settings.url}, "
        f"test clock: {clock})\n"
        f"  docs:            {base_url}/docs   (OpenAPI: {base_url}/openapi.json)\n"
        f"  console:         {base_url}/console/   (web console, Japanese and English; "
        f"docs/console.md)\n"
        f"  operator token:  {me} token --operator\n"
        f"  user token:      {me} token --user u-alice --org <organization id>\n"
        f'  try:             curl -H "Authorization: Bearer $({me} token --operator)" '
        f"{base_url}/v1/organizations -H 'Content-Type: application/json' "
        f"""-d '{{"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"}}'\n"""
        f"  walk-through:    docs/api.md"
    )

    from interface.gunicorn_logging import ACCESS_LOG_FORMAT, CardSafeGunicornLogger

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                # gunicorn's own refusals (414, 431, 400 on a bad header) in JSON too.
                "worker_class": "interface.gunicorn_worker.JsonErrorWorker",
                "accesslog": "-",
                "errorlog": "-",
                # No query value and no card number in any line (docs/operations.md).
                "logger_class": CardSafeGunicornLogger,
                "access_log_format": ACCESS_LOG_FORMAT,
                "timeout": 60,
                "graceful_timeout": 10,
            }.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                # Several servers (tests, a second checkout) may run side by side.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            from interface.app import create_app
            from interface.log_masking import mask_card_numbers_in_logs

            # The service's own log lines (500 traces with their request id) go
            # to stderr beside gunicorn's; request bodies are never logged, and
            # card numbers are masked in every line.
            logging.basicConfig(
                level=logging.INFO,
                format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            )
            mask_card_numbers_in_logs()
            return create_app()

    Server().run()


@main.command()
@click.option("--user", "user_id", help="The user id (sub claim).")
@click.option("--org", "organization_id", help="The organization the user acts in.")
@click.option("--operator", is_flag=True, help="A back-office token (scope=operator).")
@click.option(
    "--ttl",
    default=12 * 3600,
    show_default=True,
    type=click.IntRange(60, 30 * 86400),
    help="Lifetime in seconds.",
)
def token(user_id: str | None, organization_id: str | None, operator: bool, ttl: int) -> None:
    """Mint a development JWT signed with SUITE_JWT_SECRET (or the dev secret in var/)."""
    from interface.auth import mint_token

    if operator == bool(organization_id):
        raise click.UsageError("give either --operator or --user U --org ORG")
    if not operator and not user_id:
        raise click.UsageError("a user token needs --user")
    click.echo(
        mint_token(
            _secret(),
            user_id=user_id or "operator",
            organization_id=organization_id,
            operator=operator,
            ttl_seconds=ttl,
        )
    )


@main.command()
@click.option(
    "--grace-minutes",
    default=10,
    show_default=True,
    type=click.IntRange(0, 7 * 24 * 60),
    help="Leave checkouts younger than this alone (their request may be in flight).",
)
@click.pass_context
def reconcile(ctx: click.Context, grace_minutes: int) -> None:
    """Finish upgrade checkouts, plan-change and renewal charges left started by a crash,
    asking the gateway what happened (each key is charged at most once)."""
    services = command_services(ctx, existing_only=True)
    services.checkouts.reconcile_grace = timedelta(minutes=grace_minutes)
    services.plan_changes.reconcile_grace = timedelta(minutes=grace_minutes)
    services.renewals.grace = timedelta(minutes=grace_minutes)
    report = services.checkouts.reconcile()
    changes = services.plan_changes.reconcile()
    renewals = services.renewals.reconcile()
    json.dump(
        {**report.to_dict(), "plan_changes": changes.to_dict(), "renewals": renewals.to_dict()},
        sys.stdout,
    )
    sys.stdout.write("\n")
