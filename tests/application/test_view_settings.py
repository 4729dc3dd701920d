"""Who keeps the views current, and how long read-your-writes waits: from the environment."""

from __future__ import annotations

import pytest

from application.projections.read_model import ViewSettings
from application.settings import SettingsError


@pytest.mark.parametrize(
    ("store", "follows_on_read"), [("memory", True), ("sqlite", True), ("postgres", False)]
)
def test_the_api_follows_the_log_itself_except_on_postgresql(
    store: str, follows_on_read: bool
) -> None:
    settings = ViewSettings.from_env(store, {})
    assert settings.follow_on_read is follows_on_read
    assert settings.min_position_timeout == 2.0


def test_the_follower_and_the_timeout_can_be_chosen() -> None:
    settings = ViewSettings.from_env(
        "postgres", {"SUITE_VIEW_FOLLOWER": "api", "SUITE_MIN_POSITION_TIMEOUT": "0.5"}
    )
    assert settings == ViewSettings(follow_on_read=True, min_position_timeout=0.5)


@pytest.mark.parametrize(
    ("store", "env"),
    [
        ("sqlite", {"SUITE_VIEW_FOLLOWER": "cron"}),
        ("memory", {"SUITE_VIEW_FOLLOWER": "worker"}),
        ("sqlite", {"SUITE_MIN_POSITION_TIMEOUT": "soon"}),
    ],
)
def test_a_malformed_view_setting_stops_the_start(store: str, env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        ViewSettings.from_env(store, env)
