"""Every ``suitesub`` command fails clearly: one sentence, exit 2, no traceback,
and the tools that read the log never create a database."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from application.bootstrap import build_services
from interface.cli import main
from tests.conftest import fresh_postgres_database

SUITESUB = str(Path(sys.executable).with_name("suitesub"))
ORG = "00000000-0000-0000-0000-000000000001"
#: Every command that opens the store, with arguments that would otherwise run.
COMMANDS = [
    ["audit", "events", "--format", "json"],
    ["audit", "verify", "--format", "json"],
    ["audit", "replay", "--org", ORG, "--format", "json"],
    ["audit", "export"],
    ["audit", "digest"],
    ["audit", "rebuild", "--format", "json"],
    ["reconcile"],
    ["expire-trials", "--format", "json"],
    ["worker", "--once"],
    # Port 0 is always free: the store is opened before gunicorn would start.
    ["serve", "--port", "0"],
]
#: Commands that only read or finish what the service recorded.
READERS = [command for command in COMMANDS if command[0] not in ("worker", "serve")]
BAD_URLS = {
    "not understood": "mysql://root@127.0.0.1/suite",
    "bad port": "postgresql://postgres@127.0.0.1:99999/suite",
    "unreachable": "postgresql://postgres:hunter2@127.0.0.1:1/suite?connect_timeout=1",
}


def _run(arguments: list[str], url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("SUITE_DATABASE_URL", url)
    monkeypatch.delenv("SUITE_TEST_CLOCK", raising=False)
    result = CliRunner().invoke(main, arguments)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{arguments} raised {result.exception!r}"
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("problem", BAD_URLS, ids=str)
def test_a_bad_database_url_is_one_clear_sentence_and_exit_2(
    arguments: list[str], problem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    status, output = _run(arguments, BAD_URLS[problem], monkeypatch)

    assert status == 2, output
    assert "SUITE_DATABASE_URL" in output
    assert "Traceback" not in output
    assert "hunter2" not in output  # a password is never printed


@pytest.mark.parametrize("arguments", READERS, ids=" ".join)
def test_the_log_readers_never_create_a_database(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # a directory without the service's var/
    monkeypatch.delenv("SUITE_DATABASE_URL", raising=False)
    status, output = _run(arguments, "sqlite:///var/suite.sqlite3", monkeypatch)

    assert status == 2, output
    assert "No database at var/suite.sqlite3" in output
    assert list(tmp_path.iterdir()) == []  # not even var/


@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_clear_sentence_and_exit_2(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    # A store with a log, so that only the setting can fail.
    database = tmp_path / "var" / "suite.sqlite3"
    url = f"sqlite:///{database}"
    build_services(url).close()
    monkeypatch.setenv("SUITE_VIEW_FOLLOWER", "sideways")

    status, output = _run(arguments, url, monkeypatch)

    assert status == 2, output
    assert "SUITE_VIEW_FOLLOWER 'sideways'" in output
    assert "Traceback" not in output


def test_token_without_a_secret_in_production_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUITE_ENV", "production")
    monkeypatch.delenv("SUITE_JWT_SECRET", raising=False)

    result = CliRunner().invoke(main, ["token", "--operator"])

    assert result.exit_code == 2, result.output
    assert "SUITE_JWT_SECRET" in result.output
    assert "Traceback" not in result.output


def test_a_memory_store_has_no_log_to_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    status, output = _run(["audit", "verify"], "memory://", monkeypatch)

    assert status == 2
    assert "keeps nothing between processes" in output


@pytest.mark.postgres
def test_an_empty_postgres_database_is_not_given_tables_by_the_audit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_postgres_database("audit_empty") as url:
        status, output = _run(["audit", "verify", "--format", "json"], url, monkeypatch)
        with psycopg.connect(url) as connection:
            tables = connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()

    assert status == 2, output
    assert "holds no event log" in output
    assert tables == []


def test_the_installed_audit_tool_says_so_outside_the_project(tmp_path: Path) -> None:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    finished = subprocess.run(
        [SUITESUB, "audit", "verify"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2
    assert "No database at var/suite.sqlite3" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "var").exists()


def test_serve_says_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [SUITESUB, "serve", "--port", str(port)],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert finished.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in finished.stderr
    assert "make run PORT=N" in finished.stderr
    assert "Traceback" not in finished.stderr
