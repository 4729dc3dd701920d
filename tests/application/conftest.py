"""Fixtures for the application ring beyond the root ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import empty_postgres_tables


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes (here: several Services) can share."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        empty_postgres_tables(url)
        return url
    return f"sqlite:///{tmp_path}/shared.sqlite3"
