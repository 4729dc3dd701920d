"""Shared fixtures: a clock that only moves when told, the catalog, and the store.

``store_url`` is the one store fixture: application, interface and
projection suites run over every store it yields: in-memory, a SQLite file,
and PostgreSQL. The PostgreSQL store is a fresh database created for the test
session (``suite_test_<pid>_<random>``, dropped at the end) whose tables are
emptied before each test. Without a server those tests are skipped, saying
why; with ``SUITE_REQUIRE_POSTGRES=1`` they fail instead.
The server is ``SUITE_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``; any database on it serves
to create and drop the test database).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from application.catalog_loader import default_catalog
from application.service import SuiteSubscriptions
from domain.catalog import Catalog
from domain.clock import ManualClock

if "faketime" in os.environ.get("LD_PRELOAD", ""):  # `make test-future`
    # libfaketime's clock_nanosleep wrapper answers EINVAL when the monotonic
    # clock is left real (which bounded waits need): sleep with a relative
    # select() timeout instead. Only the harness's sleeping changes, no test.
    def _sleep_relative(seconds: float) -> None:
        if seconds > 0:
            select.select([], [], [], seconds)

    time.sleep = _sleep_relative

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
#: ``SUITE_TEST_CLOCK_START`` for every server a test starts: the same instant as
#: the in-process tests' clock, so no test depends on the day it is run.
PINNED_START = T0.isoformat()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def catalog() -> Catalog:
    return default_catalog()


POSTGRES_SERVER_URL = os.environ.get(
    "SUITE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@contextlib.contextmanager
def fresh_postgres_database(purpose: str = "test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (skip without a server)."""
    try:
        admin = psycopg.connect(POSTGRES_SERVER_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        reason = f"no PostgreSQL server answers at {POSTGRES_SERVER_URL}: {error}".strip()
        if os.environ.get("SUITE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SUITE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    name = f"suite_{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _with_database(POSTGRES_SERVER_URL, name)
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session: its URL."""
    with fresh_postgres_database() as url:
        yield url


def empty_postgres_tables(url: str) -> None:
    """Every table of the test database emptied, sequences restarted."""
    with psycopg.connect(url, autocommit=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        if tables:
            names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(names))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        empty_postgres_tables(url)
        # No `suitesub worker` runs inside a test: the process follows the log
        # itself before reading, as on the embedded default. Tests of the
        # worker deployment set their own ViewSettings.
        monkeypatch.setenv("SUITE_VIEW_FOLLOWER", "api")
        return url
    return f"sqlite:///{tmp_path}/suite.sqlite3"


@pytest.fixture
def app(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[SuiteSubscriptions]:
    application = SuiteSubscriptions.from_database_url(store_url, clock=clock, catalog=catalog)
    yield application
    application.close()
