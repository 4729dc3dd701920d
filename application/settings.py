"""Settings from the environment, and the one mapping of ``SUITE_DATABASE_URL``
onto the eventsourcing library's own environment variables.

- ``memory://`` — in-process store, for tests;
- ``sqlite:///var/suite.sqlite3`` (relative) or ``sqlite:////abs/path`` —
  the embedded default, WAL mode, directory created when the store is opened;
- ``postgresql://user:password@host:port/dbname`` — production.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from application import sqlite_recorder

DEFAULT_DATABASE_URL = "sqlite:///var/suite.sqlite3"


_TRUE_WORDS = ("1", "true", "yes", "on")


def env_flag(value: object) -> bool:
    """A yes/no setting: ``1``, ``true``, ``yes`` or ``on`` (any case) mean yes."""
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in _TRUE_WORDS


def is_test_clock_enabled() -> bool:
    """``SUITE_TEST_CLOCK``: may operators move the service's time (demos, tests)?"""
    return env_flag(os.environ.get("SUITE_TEST_CLOCK"))


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at start-up."""


def pinned_test_clock_start(value: str | None = None) -> datetime | None:
    """``SUITE_TEST_CLOCK_START``: the instant a fresh database's test clock is frozen at.

    An aware ISO 8601 time (``Z`` or an offset); unset or empty means none.
    """
    from application.test_clock import EARLIEST, LATEST

    raw = os.environ.get("SUITE_TEST_CLOCK_START", "") if value is None else value
    if not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"SUITE_TEST_CLOCK_START {raw!r} is not an ISO 8601 time"
        raise SettingsError(msg) from None
    if moment.tzinfo is None:
        msg = f"SUITE_TEST_CLOCK_START {raw!r} names no time zone (end it with Z or +00:00)"
        raise SettingsError(msg)
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment <= LATEST:
        msg = f"SUITE_TEST_CLOCK_START {raw!r} is outside {EARLIEST.year}..{LATEST.year}"
        raise SettingsError(msg)
    return moment


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    kind: str  # "memory", "sqlite" or "postgres"
    persistence_env: Mapping[str, str]
    sqlite_path: Path | None = None

    @property
    def is_memory(self) -> bool:
        return self.kind == "memory"

    def ensure_directory(self) -> None:
        """Create the SQLite file's directory (opening a store may; parsing never does,
        so a tool that must not create a database can look first)."""
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)


def database_settings(url: str | None = None) -> DatabaseSettings:
    """Parse a database URL (default: ``SUITE_DATABASE_URL``)."""
    url = url or os.environ.get("SUITE_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("memory://"):
        return DatabaseSettings(url, "memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if url.startswith("sqlite://"):
        return _sqlite(url)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres(url)
    msg = (
        f"SUITE_DATABASE_URL {url!r} is not understood: use memory://, "
        "sqlite:///path/to/file.sqlite3 or postgresql://user@host:port/dbname"
    )
    raise SettingsError(msg)


def _sqlite(url: str) -> DatabaseSettings:
    raw_path = url[len("sqlite://") :]
    if not raw_path.startswith("/") or raw_path == "/":
        msg = f"SUITE_DATABASE_URL {url!r}: expected sqlite:///relative or sqlite:////absolute"
        raise SettingsError(msg)
    # sqlite:///var/x.db is relative (like SQLAlchemy); sqlite:////abs/x.db absolute.
    path = Path(unquote(raw_path[1:]))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        # Writers wait for each other (several gunicorn workers share one file).
        "SQLITE_LOCK_TIMEOUT": "30",
        # One UUID per run of one id, not per row (application/sqlite_recorder.py).
        "APPLICATION_RECORDER_TOPIC": sqlite_recorder.TOPIC,
    }
    return DatabaseSettings(url, "sqlite", env, sqlite_path=path)


_POSTGRES_INTEGER_OPTIONS = ("pool_size", "max_overflow", "connect_timeout")


def _postgres(url: str) -> DatabaseSettings:
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    if not dbname:
        msg = f"SUITE_DATABASE_URL {url!r} names no database"
        raise SettingsError(msg)
    try:
        port = parts.port or 5432
    except ValueError as error:  # urllib's own message names no setting
        msg = f"SUITE_DATABASE_URL {url!r}: bad port ({error})"
        raise SettingsError(msg) from None
    query = parse_qs(parts.query)
    for option, values in query.items():
        if option in _POSTGRES_INTEGER_OPTIONS and not values[0].isdigit():
            msg = f"SUITE_DATABASE_URL {url!r}: {option} must be a whole number"
            raise SettingsError(msg)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(dbname),
        "POSTGRES_HOST": unquote(parts.hostname or "127.0.0.1"),
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": query.get("pool_size", ["5"])[0],
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["10"])[0],
        "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", ["5"])[0],
    }
    return DatabaseSettings(url, "postgres", env)


#: How long ``min_position`` waits by default; the view cache's safety TTL.
DEFAULT_MIN_POSITION_TIMEOUT = 2.0
DEFAULT_VIEW_CACHE_TTL = 30.0


def _setting(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).lower()
    if value not in allowed:
        msg = f"{name} {value!r}: expected {allowed[0]!r} or {allowed[1]!r}"
        raise SettingsError(msg)
    return value


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name) or str(default)
    try:
        return max(float(raw), 0.0)
    except ValueError:
        msg = f"{name} {raw!r} is not a number of seconds"
        raise SettingsError(msg) from None


@dataclass(frozen=True, slots=True)
class ViewSettings:
    follow_on_read: bool  # the API applies pending events itself (else a worker does)
    min_position_timeout: float
    view_cache: bool = False  # the NOTIFY-fed cache (PostgreSQL with a worker only)
    view_cache_ttl: float = DEFAULT_VIEW_CACHE_TTL  # a safety net, not the mechanism

    @classmethod
    def from_env(cls, store_kind: str, env: dict[str, str] | None = None) -> ViewSettings:
        env = dict(os.environ if env is None else env)
        default = "worker" if store_kind == "postgres" else "api"
        follower = _setting(env, "SUITE_VIEW_FOLLOWER", default, ("api", "worker"))
        if store_kind == "memory" and follower == "worker":
            msg = "SUITE_VIEW_FOLLOWER=worker needs a shared store (SQLite or PostgreSQL)"
            raise SettingsError(msg)
        cache = _setting(env, "SUITE_VIEW_CACHE", "on", ("on", "off")) == "on"
        return cls(
            follow_on_read=follower == "api",
            min_position_timeout=_seconds(
                env, "SUITE_MIN_POSITION_TIMEOUT", DEFAULT_MIN_POSITION_TIMEOUT
            ),
            view_cache=cache and follower == "worker" and store_kind == "postgres",
            view_cache_ttl=_seconds(env, "SUITE_VIEW_CACHE_TTL", DEFAULT_VIEW_CACHE_TTL),
        )
