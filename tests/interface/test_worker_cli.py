"""``suitesub expire-trials`` and ``suitesub worker --once`` on a shared store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

from application.bootstrap import build_services
from domain.clock import ManualClock
from interface.cli import main


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/suite.sqlite3"
    monkeypatch.setenv("SUITE_DATABASE_URL", url)
    monkeypatch.delenv("SUITE_TEST_CLOCK", raising=False)
    return url


def trial_started_days_ago(url: str, days: int) -> str:
    """A trial started ``days`` ago by the real clock (the CLI reads the system clock)."""
    past = ManualClock(datetime.now(tz=UTC) - timedelta(days=days))
    services = build_services(url, clock=past)
    try:
        registered = services.app.register_organization(
            name=f"Started {days} days ago", country="JP", owner_user_id="u-owner"
        )
        services.app.start_trial(UUID(registered.organization_id), by="u-owner")
        return registered.organization_id
    finally:
        services.close()


def test_expire_trials_records_each_due_trial_once(database_url: str) -> None:
    due = trial_started_days_ago(database_url, 40)
    trial_started_days_ago(database_url, 5)
    runner = CliRunner()

    first = runner.invoke(main, ["expire-trials", "--format", "json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {
        "expired": [due],
        "unchanged": [],
        "failed": [],
        "more": False,
    }
    again = runner.invoke(main, ["expire-trials", "--format", "json"])
    assert json.loads(again.output)["expired"] == []


def test_the_worker_once_brings_the_views_up_to_the_log_and_sweeps(database_url: str) -> None:
    due = trial_started_days_ago(database_url, 40)
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 0, result.output

    services = build_services(database_url)
    try:
        assert services.read_model.lag()["lag"] == 0
        row = services.read_model.views.access_row(due)
        assert row is not None
        assert row.facts.bundle_state == "trial_expired"
    finally:
        services.close()
