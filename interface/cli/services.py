"""The one way every ``suitesub`` command opens the service's parts.

A command never builds ``Services`` itself: it calls :func:`command_services`,
which reads the settings, opens the store named by ``SUITE_DATABASE_URL``
and turns every settings or connection problem into one clear sentence and
exit status 2 (``CommandFailed``) — never a traceback. Commands that only
read or finish what the service recorded (audit, reconcile, expire-trials,
renew) pass ``existing_only=True``: they refuse to create a database, so a
typo in the URL or a run in the wrong directory says so instead of auditing
an empty new log.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit, urlunsplit

import click
import psycopg
from eventsourcing.persistence import PersistenceError

from application.bootstrap import Services, build_services
from application.service import SuiteSubscriptions
from application.settings import (
    DatabaseSettings,
    SettingsError,
    database_settings,
    is_test_clock_enabled,
)
from domain.errors import CatalogError

#: The library names an application's events table after the application.
EVENTS_TABLE = f"{SuiteSubscriptions.name.lower()}_events"


class CommandFailed(click.ClickException):
    """The command could not run: a setting, the store, a missing database (exit 2)."""

    exit_code = 2


def command_services(ctx: click.Context, *, existing_only: bool = False) -> Services:
    """The services of this invocation: injected (tests put them on the root
    context's ``obj``) or opened from the settings, closed when the command ends."""
    root = ctx.find_root()
    if isinstance(root.obj, Services):
        return root.obj
    services = open_services(existing_only=existing_only)
    root.obj = services
    root.call_on_close(services.close)
    return services


def open_services(*, existing_only: bool = False) -> Services:
    """Open the store of ``SUITE_DATABASE_URL``; any failure is :class:`CommandFailed`."""
    try:
        settings = database_settings()
    except SettingsError as error:
        raise CommandFailed(str(error)) from None
    if existing_only:
        require_existing_log(settings)
    try:
        # With the test clock on, "now" is the service's time, as the API sees it.
        return build_services(settings.url, test_clock=is_test_clock_enabled())
    except (SettingsError, CatalogError) as error:
        raise CommandFailed(str(error)) from None
    except (PersistenceError, psycopg.Error, sqlite3.Error, OSError) as error:
        raise CommandFailed(_cannot_open(settings, error)) from None


def require_existing_log(settings: DatabaseSettings) -> None:
    """Refuse a store that holds no event log (it would be created empty)."""
    shown = redacted(settings.url)
    if settings.is_memory:
        msg = (
            f"SUITE_DATABASE_URL={shown} keeps nothing between processes: there is no log "
            "to read. Point SUITE_DATABASE_URL at the service's database."
        )
        raise CommandFailed(msg)
    if settings.sqlite_path is not None:
        if not settings.sqlite_path.is_file():
            msg = (
                f"No database at {settings.sqlite_path} (SUITE_DATABASE_URL={shown}). "
                "Run the command where the service keeps var/, or set SUITE_DATABASE_URL; "
                "nothing was created."
            )
            raise CommandFailed(msg)
        return
    env = settings.persistence_env
    try:
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            dbname=env["POSTGRES_DBNAME"],
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
        ) as connection:
            row = connection.execute("SELECT to_regclass(%s)", (EVENTS_TABLE,)).fetchone()
    except psycopg.Error as error:
        raise CommandFailed(_cannot_open(settings, error)) from None
    if row is None or row[0] is None:
        msg = (
            f"The database of SUITE_DATABASE_URL={shown} holds no event log "
            f"(no table {EVENTS_TABLE}); nothing was created."
        )
        raise CommandFailed(msg)


def redacted(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _cannot_open(settings: DatabaseSettings, error: BaseException) -> str:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"Cannot open the store of SUITE_DATABASE_URL={redacted(settings.url)}: {reason}"
