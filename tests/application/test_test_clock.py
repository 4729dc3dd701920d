"""The test clock of SPEC §7 on every store: advance, set, freeze, start pinned.

The base clock is a ManualClock that the test moves by itself, standing in
for the wall clock running on between calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.settings import SettingsError, pinned_test_clock_start
from application.test_clock import LATEST, TestClock
from domain.clock import ManualClock
from domain.errors import InvalidRequest, StateConflict
from tests.conftest import T0

PINNED = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
#: Stores that outlive a restart (each memory:// store is its own process's).
on_durable_stores = pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def services(store_url: str, clock: ManualClock) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, test_clock=True)
    yield built
    built.close()


def _clock(services: Services) -> TestClock:
    assert services.test_clock is not None
    return services.test_clock


def test_a_frozen_clock_stands_still_while_the_wall_clock_runs(
    services: Services, clock: ManualClock
) -> None:
    test_clock = _clock(services)
    frozen = test_clock.freeze(True)
    clock.advance(timedelta(hours=5))

    assert frozen.frozen
    assert services.clock.now() == frozen.now == T0
    assert test_clock.reading().offset == -timedelta(hours=5)


def test_advancing_a_frozen_clock_moves_it_and_it_stays_frozen(
    services: Services, clock: ManualClock
) -> None:
    test_clock = _clock(services)
    test_clock.freeze(True)
    moved = test_clock.advance(timedelta(days=30))
    clock.advance(timedelta(minutes=7))

    assert moved.frozen
    assert services.clock.now() == T0 + timedelta(days=30)


def test_unfreezing_runs_on_from_the_frozen_instant(services: Services, clock: ManualClock) -> None:
    test_clock = _clock(services)
    test_clock.freeze(True)
    clock.advance(timedelta(hours=2))
    running = test_clock.freeze(False)
    clock.advance(timedelta(seconds=90))

    assert not running.frozen
    assert services.clock.now() == T0 + timedelta(seconds=90)


def test_set_to_goes_anywhere_while_the_log_is_empty(services: Services) -> None:
    test_clock = _clock(services)
    earlier = T0 - timedelta(days=400)

    assert test_clock.set_to(earlier).now == earlier
    assert services.clock.now() == earlier


def test_set_to_only_moves_forward_once_the_log_holds_an_event(services: Services) -> None:
    test_clock = _clock(services)
    services.app.register_organization(name="Acme KK", country="JP", owner_user_id="u-owner")

    with pytest.raises(StateConflict) as refused:
        test_clock.set_to(T0 - timedelta(seconds=1))
    later = test_clock.set_to(T0 + timedelta(days=3))

    assert refused.value.code == "test_clock_backwards"
    assert later.now == services.clock.now() == T0 + timedelta(days=3)


def test_the_clock_refuses_to_pass_its_documented_latest_instant(services: Services) -> None:
    test_clock = _clock(services)
    test_clock.set_to(LATEST - timedelta(days=1))

    with pytest.raises(InvalidRequest) as refused:
        test_clock.advance(timedelta(days=3650))

    assert "advance_seconds" in refused.value.details["fields"]
    assert services.clock.now() == LATEST - timedelta(days=1)
    # Time near the limit still serves every rule (no OverflowError anywhere).
    registered = services.app.register_organization(
        name="Acme KK", country="JP", owner_user_id="u-owner"
    )
    organization_id = UUID(registered.organization_id)
    services.app.record_standalone_subscription(
        organization_id,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=services.clock.now().date(),
        period_end=services.clock.now().date() + timedelta(days=365),
        super_admin="u-alice",
        admins=[],
    )
    services.app.start_trial(organization_id, by="u-alice")
    assert services.app.access(organization_id)["bundle"]["state"] == "trial"


@on_durable_stores
def test_a_fresh_database_starts_frozen_at_the_pinned_instant(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", "2026-11-26T09:00:00Z")
    wall = ManualClock(datetime(2031, 6, 1, tzinfo=UTC))  # whatever day it is run
    first = build_services(store_url, clock=wall, test_clock=True)
    wall.advance(timedelta(hours=1))
    _clock(first).advance(timedelta(days=2))
    second = build_services(store_url, clock=wall, test_clock=True)  # a restart

    assert first.clock.now() == second.clock.now() == PINNED + timedelta(days=2)
    assert _clock(second).reading().frozen
    first.close()
    second.close()


@on_durable_stores
def test_the_pinned_start_never_goes_before_events_already_recorded(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = ManualClock(datetime(2031, 6, 1, tzinfo=UTC))
    unpinned = build_services(store_url, clock=wall)
    unpinned.app.register_organization(name="Acme KK", country="JP", owner_user_id="u-owner")
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", "2026-11-26T09:00:00Z")
    pinned = build_services(store_url, clock=wall, test_clock=True)

    assert pinned.clock.now() == wall.now()
    unpinned.close()
    pinned.close()


@on_durable_stores
def test_a_log_built_before_the_server_starts_can_still_be_pinned_after_its_events(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = ManualClock(datetime(2031, 6, 1, tzinfo=UTC))
    builder = build_services(store_url, clock=ManualClock(PINNED))
    builder.app.register_organization(name="Acme KK", country="JP", owner_user_id="u-owner")
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", "2026-11-26T09:00:00Z")
    server = build_services(store_url, clock=wall, test_clock=True)

    assert server.clock.now() == PINNED
    builder.close()
    server.close()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("tomorrow", "not an ISO 8601 time"),
        ("2026-11-26T09:00:00", "names no time zone"),
        ("9999-01-01T00:00:00Z", "outside"),
    ],
)
def test_a_bad_pinned_start_is_a_settings_error(value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        pinned_test_clock_start(value)


def test_an_unset_pinned_start_pins_nothing() -> None:
    assert pinned_test_clock_start("") is None
    assert pinned_test_clock_start("2026-11-26T18:00:00+09:00") == PINNED
