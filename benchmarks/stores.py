"""Throw-away stores for one benchmark: a fresh SQLite file or a fresh PostgreSQL database.

PostgreSQL benchmarks run when a server answers at ``SUITE_BENCH_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``, the maintenance
database used only to create and drop the benchmark's own database).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.harness import BENCH_DIR

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("SUITE_BENCH_POSTGRES", DEFAULT_POSTGRES_ADMIN_URL)


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_conninfo(postgres_admin_url()), connect_timeout=2):
            return True
    except Exception:
        return False


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=BENCH_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def sqlite_store(prefix: str) -> Iterator[str]:
    """A database URL naming a new SQLite file, removed afterwards."""
    with scratch_dir(prefix) as directory:
        yield f"sqlite:///{directory}/suite.sqlite3"


@contextmanager
def postgres_store(prefix: str) -> Iterator[str]:
    """A database URL naming a freshly created PostgreSQL database, dropped afterwards."""
    import psycopg

    admin = postgres_admin_url()
    name = f"bench_{prefix.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(admin), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "pool_size=5", ""))
    try:
        yield url
    finally:
        with psycopg.connect(_conninfo(admin), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store(kind: str, prefix: str) -> Iterator[str]:
    if kind == "sqlite":
        with sqlite_store(prefix) as url:
            yield url
    elif kind == "postgres":
        with postgres_store(prefix) as url:
            yield url
    else:
        msg = f"unknown store kind {kind!r}"
        raise ValueError(msg)


def _conninfo(url: str) -> str:
    parts = urlsplit(url)
    return (
        f"host={parts.hostname or '127.0.0.1'} port={parts.port or 5432} "
        f"user={parts.username or 'postgres'} dbname={parts.path.lstrip('/') or 'postgres'}"
        + (f" password={parts.password}" if parts.password else "")
    )
