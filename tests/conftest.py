"""Shared fixtures: a clock that only moves when told, the catalog, and the store.

``store_url`` is the one store fixture: application, interface and
projection suites run over every store it yields (in-memory and a SQLite file
here; PostgreSQL joins when a server answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from application.catalog_loader import default_catalog
from application.service import SuiteSubscriptions
from domain.catalog import Catalog
from domain.clock import ManualClock

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path}/suite.sqlite3"


@pytest.fixture
def app(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[SuiteSubscriptions]:
    application = SuiteSubscriptions.from_database_url(store_url, clock=clock, catalog=catalog)
    yield application
    application.close()
