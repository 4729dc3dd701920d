"""SUITE_DATABASE_URL: one setting picks the store, mapped onto the library's
environment; a URL that cannot be understood fails at start with SettingsError."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from application.service import SuiteSubscriptions
from application.settings import (
    DEFAULT_DATABASE_URL,
    SettingsError,
    database_settings,
    env_flag,
    is_test_clock_enabled,
)
from application.sqlite_recorder import SQLiteApplicationRecorderReusingIds
from domain.clock import ManualClock
from tests.domain.builders import T0


def test_memory_selects_the_in_process_store() -> None:
    settings = database_settings("memory://")
    assert settings.kind == "memory"
    assert settings.is_memory
    assert dict(settings.persistence_env) == {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def test_a_relative_sqlite_path_is_relative_to_the_working_directory_created_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = database_settings("sqlite:///var/data/suite.sqlite3")
    assert settings.kind == "sqlite"
    assert settings.sqlite_path == Path("var/data/suite.sqlite3")
    assert settings.persistence_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert settings.persistence_env["SQLITE_DBNAME"] == "var/data/suite.sqlite3"
    assert not (tmp_path / "var").exists()  # parsing creates nothing
    settings.ensure_directory()  # opening the store does
    assert (tmp_path / "var" / "data").is_dir()


def test_an_absolute_sqlite_path_takes_four_slashes(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "suite.sqlite3"
    settings = database_settings(f"sqlite:///{target}")  # target starts with "/"
    assert settings.sqlite_path == target
    assert settings.persistence_env["SQLITE_DBNAME"] == str(target)
    settings.ensure_directory()
    assert target.parent.is_dir()


def test_writers_on_a_shared_sqlite_file_wait_for_each_other(tmp_path: Path) -> None:
    settings = database_settings(f"sqlite:///{tmp_path}/x.sqlite3")
    assert int(settings.persistence_env["SQLITE_LOCK_TIMEOUT"]) > 0


def test_the_default_is_a_sqlite_file_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUITE_DATABASE_URL", raising=False)
    settings = database_settings()
    assert DEFAULT_DATABASE_URL == "sqlite:///var/suite.sqlite3"
    assert settings.url == DEFAULT_DATABASE_URL
    assert settings.sqlite_path == Path("var/suite.sqlite3")
    settings.ensure_directory()
    assert (tmp_path / "var").is_dir()


def test_suite_database_url_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUITE_DATABASE_URL", "memory://")
    assert database_settings().kind == "memory"


def test_a_postgres_url_maps_onto_the_librarys_postgres_settings() -> None:
    settings = database_settings(
        "postgresql://suite:s%40cret@db.example:6543/suite_prod?pool_size=12&connect_timeout=9"
    )
    assert settings.kind == "postgres"
    env = dict(settings.persistence_env)
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "suite_prod",
        "POSTGRES_HOST": "db.example",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "suite",
        "POSTGRES_PASSWORD": "s@cret",
        "POSTGRES_POOL_SIZE": "12",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_CONNECT_TIMEOUT": "9",
    }


def test_a_postgres_url_without_user_or_port_uses_the_defaults() -> None:
    env = dict(database_settings("postgres://localhost/suite").persistence_env)
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_USER"]) == (
        "localhost",
        "5432",
        "postgres",
    )
    assert env["POSTGRES_PASSWORD"] == ""


@pytest.mark.parametrize(
    "url",
    [
        "mysql://localhost/suite",
        "suite.sqlite3",
        "sqlite://",
        "sqlite:///",
        "sqlite://relative.sqlite3",
        "postgresql://localhost",
        "postgresql://localhost/",
        "postgresql://localhost:notaport/suite",
        "postgresql://localhost:99999/suite",
        "postgresql://localhost/suite?pool_size=many",
        "postgresql://localhost/suite?connect_timeout=-1",
    ],
)
def test_a_url_that_cannot_be_understood_fails_with_settings_error(url: str) -> None:
    with pytest.raises(SettingsError) as failed:
        database_settings(url)
    assert url in str(failed.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("0", False),
        ("", False),
        (None, False),
        ("off", False),
        (True, True),
        (False, False),
    ],
)
def test_yes_no_settings_read_the_same_everywhere(raw: object, expected: bool) -> None:
    assert env_flag(raw) is expected


def test_the_test_clock_is_off_unless_the_environment_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUITE_TEST_CLOCK", raising=False)
    assert not is_test_clock_enabled()
    monkeypatch.setenv("SUITE_TEST_CLOCK", "True")
    assert is_test_clock_enabled()


def test_the_sqlite_recorder_converts_each_stored_id_once_per_run(tmp_path: Path) -> None:
    settings = database_settings(f"sqlite:///{tmp_path / 'ids.sqlite3'}")
    app = SuiteSubscriptions(dict(settings.persistence_env), clock=ManualClock(T0))
    recorder = app.recorder
    assert isinstance(recorder, SQLiteApplicationRecorderReusingIds)
    first, second = uuid4(), uuid4()
    converted = [recorder.convert_originator_id(i.hex) for i in (first, first, second, first)]
    assert converted == [first, first, second, first]
    assert converted[0] is converted[1]
    assert all(type(c) is UUID for c in converted)
    app.close()
