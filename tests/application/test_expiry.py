"""The expiry sweep: TrialExpired recorded once for each trial whose end passed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.expiry import expire_due_trials
from application.projections.read_model import ViewSettings
from domain.catalog import Catalog
from domain.clock import ManualClock
from tests.application.helpers import register

SETTINGS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=SETTINGS)
    yield built
    built.close()


def trials(services: Services, count: int, *, name: str = "Org") -> list[str]:
    orgs = []
    for n in range(count):
        org = register(services.app, name=f"{name} {n}")
        services.app.start_trial(org, by="u-owner")
        orgs.append(str(org))
    return orgs


def expired_events(services: Services, organization_id: str) -> int:
    page = services.app.organization_events(UUID(organization_id), limit=100)
    return sum(1 for event in page["events"] if event["type"] == "TrialExpired")


def test_the_sweep_expires_only_trials_whose_end_has_passed_and_only_once(
    services: Services, clock: ManualClock
) -> None:
    early = trials(services, 2, name="Early")
    clock.advance(timedelta(days=10))
    late = trials(services, 1, name="Late")
    clock.advance(timedelta(days=20))  # the early trials ended; the late one has 10 days

    first = expire_due_trials(services.app, services.read_model)
    assert sorted(first.expired) == sorted(early)
    assert not first.more
    assert expire_due_trials(services.app, services.read_model).expired == []
    assert [expired_events(services, org) for org in early + late] == [1, 1, 0]
    view = services.read_model.access(UUID(early[0]))
    assert view["bundle"]["state"] == "trial_expired"


def test_a_run_expires_at_most_its_batch(services: Services, clock: ManualClock) -> None:
    due = trials(services, 5)
    clock.advance(timedelta(days=31))
    runs = []
    while True:
        report = expire_due_trials(services.app, services.read_model, batch=2)
        runs.append(len(report.expired))
        if not report.more:
            break
    assert runs == [2, 2, 1]
    assert all(expired_events(services, org) == 1 for org in due)


def test_several_sweepers_at_once_record_each_expiry_once(
    shared_store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    url = shared_store_url
    sweepers = [
        build_services(url, clock=clock, catalog=catalog, view_settings=SETTINGS) for _ in range(3)
    ]
    try:
        due = trials(sweepers[0], 8)
        clock.advance(timedelta(days=31))
        reports = []

        def sweep(services: Services) -> None:
            reports.append(expire_due_trials(services.app, services.read_model, batch=100))

        threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(reports) == 3
        assert sorted(org for r in reports for org in r.expired) == sorted(due)
        assert all(expired_events(sweepers[0], org) == 1 for org in due)
    finally:
        for services in sweepers:
            services.close()
