"""What is stored is the whole truth: a restart on the same SQLite file gives the
same facts and view, and snapshots never change what a load returns."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.domain import OriginatorIDError, OriginatorVersionError

from application.service import SuiteSubscriptions, project_organization
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict
from domain.organization import Organization
from tests.application.helpers import CONTACT, PAYMENT, SPEC_REQUEST, record_crm, register


def shuffle_admins(app: SuiteSubscriptions, org: UUID, times: int) -> None:
    for index in range(times):
        app.change_service_admins(
            org,
            service="survey",
            super_admin=f"u-survey-{index}",
            admins=["u-alice"],
            by="operator",
            by_operator=True,
        )


def long_story(app: SuiteSubscriptions, clock: ManualClock) -> UUID:
    """51 events; snapshots at 20 (trial and a pending checkout) and 40 (mid-purchase)."""
    org = register(app)
    record_crm(app, org)
    app.record_standalone_subscription(
        org,
        service="desk",
        seats=3,
        billing_period="yearly",
        amount_paid=36_000,
        period_start=date(2026, 6, 1),
        period_end=date(2027, 6, 1),
        super_admin="u-alice",
        admins=["u-bob"],
    )
    shuffle_admins(app, org, 15)  # versions 4..18
    app.start_trial(org, by="u-alice")  # 19
    total = app.quote(org, SPEC_REQUEST).total
    app.begin_upgrade_checkout(  # 20
        org,
        by="u-alice",
        request=SPEC_REQUEST,
        billing_contact=CONTACT,
        expected_total=total,
        checkout_id="chk_1",
    )
    app.fail_upgrade_checkout(org, checkout_id="chk_1", reason="card_declined")  # 21
    shuffle_admins(app, org, 15)  # 22..36
    clock.advance(timedelta(days=25))
    app.extend_trial(org, by="u-alice")  # 37
    total = app.quote(org, SPEC_REQUEST).total
    app.begin_upgrade_checkout(  # 38
        org,
        by="u-alice",
        request=SPEC_REQUEST,
        billing_contact=CONTACT,
        expected_total=total,
        checkout_id="chk_2",
    )
    app.complete_upgrade_checkout(org, checkout_id="chk_2", payment=PAYMENT)  # 39..41
    shuffle_admins(app, org, 10)  # 42..51
    return org


def folded_from_every_event(app: SuiteSubscriptions, org: UUID, up_to: int) -> OrganizationFacts:
    facts: OrganizationFacts | None = None
    for event in app.events.get(org, lte=up_to):
        facts = event.fold(facts)  # type: ignore[attr-defined]
    assert facts is not None
    return facts


def test_snapshots_are_taken_as_the_stream_grows(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = long_story(app, clock)
    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(org))
    assert [s.originator_version for s in snapshots] == [20, 40]
    assert app.get_organization(org).version == 51


def test_loading_through_snapshots_gives_the_facts_of_folding_every_event(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = long_story(app, clock)
    facts: OrganizationFacts | None = None
    for event in app.events.get(org):
        facts = event.fold(facts)  # type: ignore[attr-defined]
        loaded: Organization = app.repository.get(org, version=event.originator_version)
        assert loaded.facts == facts, event.originator_version
    latest = app.facts(org)
    assert latest.bundle_state == "active"
    assert [(s.service, s.terminated) for s in latest.subscriptions] == [
        ("crm", True),
        ("desk", True),
    ]


def test_the_facts_survive_their_json_form_at_every_version(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = long_story(app, clock)
    for version in (19, 20, 21, 37, 38, 40, 51):
        facts = folded_from_every_event(app, org, version)
        assert facts_from_dict(facts_to_dict(facts)) == facts, version


def test_reopening_the_sqlite_file_after_a_restart_gives_the_same_state(
    tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> None:
    url = f"sqlite:///{tmp_path}/var/suite.sqlite3"
    before = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    org = long_story(before, clock)
    facts, view = before.facts(org), before.access(org)
    events = before.organization_events(org, limit=1000)
    eligibility = before.trial_eligibility(org, "u-alice")
    before.close()

    after = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    try:
        assert after.facts(org) == facts
        assert after.access(org) == view
        assert after.organization_events(org, limit=1000) == events
        assert after.trial_eligibility(org, "u-alice") == eligibility
        assert after.snapshots is not None
        assert [s.originator_version for s in after.snapshots.get(org)] == [20, 40]
        # …and the restarted process carries on where the first one stopped.
        shuffle_admins(after, org, 1)
        assert after.get_organization(org).version == 52
    finally:
        after.close()
    assert (tmp_path / "var" / "suite.sqlite3").exists()


def test_a_trial_in_progress_survives_a_restart(
    tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> None:
    url = f"sqlite:///{tmp_path}/suite.sqlite3"
    before = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    org = register(before)
    record_crm(before, org)
    before.start_trial(org, by="u-alice")
    before.close()

    clock.advance(timedelta(days=30))
    after = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    try:
        assert after.access(org)["bundle"]["state"] == "trial_expired"
        assert after.expire_trial(org).changed
        after.extend_trial(org, by="u-alice")
        assert after.access(org)["bundle"]["days_left"] == 15
    finally:
        after.close()


def test_the_projector_mutates_as_the_library_mutates_event_by_event(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = long_story(app, clock)
    events = list(app.events.get(org))
    one_by_one: Organization | None = None
    for event in events:
        one_by_one = event.mutate(one_by_one)
    projected = project_organization(None, events)
    assert isinstance(projected, Organization)
    assert isinstance(one_by_one, Organization)
    assert projected.facts == one_by_one.facts
    assert (projected.id, projected.version) == (one_by_one.id, one_by_one.version)
    assert projected.modified_on == one_by_one.modified_on == events[-1].timestamp

    with pytest.raises(OriginatorVersionError):
        project_organization(None, [*events[:3], *events[4:]])
    other = register(app)
    with pytest.raises(OriginatorIDError):
        project_organization(None, [*app.events.get(other), *events[1:]])
