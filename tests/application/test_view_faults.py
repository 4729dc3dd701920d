"""An event the views cannot decode or apply stops no one but itself.

The poisoned events here are written straight into the event store, past the
domain (which refuses to record them): a NUL where PostgreSQL's text columns
cannot hold one, bytes that are not an event, a topic no class answers to.
Every other organization's views keep advancing, ``min_position`` reads
answer, the fault is recorded (``/readyz`` shows it) and a rebuild agrees.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from application.bootstrap import Services, build_services
from application.projections.rebuild import rebuild_views
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.organization import Organization
from tests.application.helpers import record_crm, register


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


def _insert(services: Services, stored: StoredEvent) -> int:
    services.app.recorder.insert_events([stored])
    position = services.app.recorder.max_notification_id()
    assert position is not None
    return position


def _registration_named(services: Services, name: str) -> StoredEvent:
    """A registration whose stored name is ``name`` (the domain would refuse it)."""
    organization = Organization.register(
        organization_id=uuid4(),
        name="PLACEHOLDER",
        country="JP",
        owner_user_id="u-owner",
        at=services.clock.now(),
    )
    stored = services.app.mapper.to_stored_event(organization.collect_events()[0])
    state = stored.state.replace(b'"PLACEHOLDER"', json.dumps(name).encode())
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, state)


def _undecodable(topic: str = "domain.events:OrganizationRegistered") -> StoredEvent:
    return StoredEvent(uuid4(), 1, topic, b"\xff this is not an event")


POISONS = {
    "nul-in-a-name": lambda services: _registration_named(services, "Acme\u0000"),
    "lone-surrogate-in-a-name": lambda services: _registration_named(services, "Acme\ud800"),
    "bytes-that-are-not-json": lambda services: _undecodable(),
    "a-topic-no-class-answers-to": lambda services: _undecodable("domain.events:NoSuchEvent"),
}


def _view_version(services: Services, organization: UUID, min_position: int) -> int:
    view = services.read_model.access(organization, min_position=min_position)
    version: int = view["version"]
    return version


@pytest.mark.parametrize("poison", list(POISONS))
def test_a_poisoned_event_stops_no_other_organizations_views(
    services: Services, poison: str
) -> None:
    app = services.app
    before = register(app, "Before KK")
    services.read_model.catch_up()
    poisoned = POISONS[poison](services)
    poisoned_at = _insert(services, poisoned)
    after = register(app, "After KK")
    record_crm(app, before)
    latest = app.recorder.max_notification_id() or 0

    assert services.read_model.catch_up() == latest
    assert _view_version(services, before, latest) == 2
    assert _view_version(services, after, latest) == 1

    # Each event is in the views or among the faults: a store that can hold
    # the value (SQLite holds a NUL) shows it; one that cannot records why.
    assert services.view_faults is not None
    summary = services.view_faults.summary()
    shown = services.read_model.views.access_row(str(poisoned.originator_id)) is not None
    if shown:
        assert summary["count"] == 0
    else:
        assert summary["count"] == 1
        fault = summary["faults"][0]
        assert fault["position"] == poisoned_at
        assert fault["organization_id"] == str(poisoned.originator_id)
        assert "\u0000" not in fault["problem"]

    report = rebuild_views(services.app, services.read_model.views, faults=services.view_faults)
    assert report.consistent, report.differences
    assert report.rebuilt_position == latest


def test_a_fault_is_recorded_once_however_many_followers_meet_it(services: Services) -> None:
    _insert(services, _undecodable())
    register(services.app)

    services.read_model.catch_up()
    rebuild_views(
        services.app, services.read_model.views, faults=services.view_faults
    )  # a second follower (the fresh views) meets it again

    assert services.view_faults is not None
    assert services.view_faults.summary()["count"] == 1


def test_an_error_that_is_not_the_events_fault_still_stops_the_follower(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from application.projections import views as views_module

    register(services.app)

    def crash(*_: object) -> None:
        raise RuntimeError("the process dies here")

    monkeypatch.setattr(views_module, "fold_run", crash)
    with pytest.raises(RuntimeError):
        services.read_model.catch_up()

    assert services.read_model.views.position() == 0
    assert services.view_faults is not None
    assert services.view_faults.summary()["count"] == 0


@pytest.mark.postgres
def test_on_postgresql_a_nul_is_recorded_as_a_fault_not_a_crash(
    postgres_database: str, clock: ManualClock, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import empty_postgres_tables

    empty_postgres_tables(postgres_database)
    monkeypatch.setenv("SUITE_VIEW_FOLLOWER", "api")
    services = build_services(postgres_database, clock=clock, catalog=catalog)
    try:
        poisoned_at = _insert(services, _registration_named(services, "Acme\u0000"))
        other = register(services.app, "Other KK")
        latest = services.app.recorder.max_notification_id() or 0

        assert _view_version(services, other, latest) == 1
        assert services.view_faults is not None
        faults = services.view_faults.summary()["faults"]
        assert [f["position"] for f in faults] == [poisoned_at]
        assert faults[0]["problem"].startswith("cannot be applied")
    finally:
        services.close()


@pytest.mark.parametrize("poison", list(POISONS))
def test_audit_verify_names_the_poisoned_event(services: Services, poison: str) -> None:
    from application.audit_verification import verify_log

    register(services.app, "Sound KK")
    poisoned = POISONS[poison](services)
    poisoned_at = _insert(services, poisoned)

    report = verify_log(services.app)

    # Every finding is about the poisoned event (its edited link is broken too).
    event = (str(poisoned.originator_id), poisoned.originator_version)
    assert {(fault.organization_id, fault.version) for fault in report.faults} == {event}
    named = [f for f in report.faults if f.fault in ("undecodable", "unsafe_text")]
    assert [f.position for f in named] == [poisoned_at]
    if poison.endswith("in-a-name"):
        assert named[0].fault == "unsafe_text"
        assert named[0].detail.startswith("data.name must not contain")
