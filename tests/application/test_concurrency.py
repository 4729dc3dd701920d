"""Two processes on one SQLite file: the loser of a version race is answered by
the rules on the fresh state, never with a storage error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from application.service import SuiteSubscriptions
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.errors import StateConflict
from domain.organization import Organization
from tests.application.helpers import CONTACT, SPEC_REQUEST, record_crm, register


@pytest.fixture
def two_processes(
    tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> Iterator[tuple[SuiteSubscriptions, SuiteSubscriptions]]:
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    first = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    second = SuiteSubscriptions.from_database_url(url, clock=clock, catalog=catalog)
    yield first, second
    first.close()
    second.close()


def reads_stale_once(
    app: SuiteSubscriptions, stale: Organization, monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    """Make ``app`` decide once on a copy read before the other process wrote."""
    real_get = app.get_organization
    loads: list[int] = []

    def get_organization(organization_id: UUID) -> Organization:
        loads.append(1)
        return stale if len(loads) == 1 else real_get(organization_id)

    monkeypatch.setattr(app, "get_organization", get_organization)
    return loads


def test_two_racing_trial_starts_give_one_trial_and_one_trial_already_used(
    two_processes: tuple[SuiteSubscriptions, SuiteSubscriptions],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_processes
    org = register(first)
    record_crm(first, org)
    stale = second.get_organization(org)  # the second process reads…
    first.start_trial(org, by="u-alice")  # …the first one writes…
    loads = reads_stale_once(second, stale, monkeypatch)

    with pytest.raises(StateConflict) as refused:  # …and the second one loses the race
        second.start_trial(org, by="u-alice")

    assert refused.value.code == "trial_already_used"
    assert len(loads) == 2  # decided on the stale copy, conflicted, decided again
    for process in (first, second):
        types = [e["type"] for e in process.organization_events(org)["events"]]
        assert types.count("TrialStarted") == 1


def test_two_racing_checkouts_give_one_checkout_and_one_checkout_in_progress(
    two_processes: tuple[SuiteSubscriptions, SuiteSubscriptions],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_processes
    org = register(first)
    record_crm(first, org)
    total = first.quote(org, SPEC_REQUEST).total
    stale = second.get_organization(org)
    first.begin_upgrade_checkout(
        org, by="u-alice", request=SPEC_REQUEST, billing_contact=CONTACT, expected_total=total
    )
    reads_stale_once(second, stale, monkeypatch)

    with pytest.raises(StateConflict) as refused:
        second.begin_upgrade_checkout(
            org, by="u-alice", request=SPEC_REQUEST, billing_contact=CONTACT, expected_total=total
        )

    assert refused.value.code == "checkout_in_progress"
    types = [e["type"] for e in second.organization_events(org)["events"]]
    assert types.count("UpgradeCheckoutStarted") == 1


def test_a_write_made_by_another_process_is_seen_at_once(
    two_processes: tuple[SuiteSubscriptions, SuiteSubscriptions],
) -> None:
    first, second = two_processes
    org = register(first)
    record_crm(first, org)
    first.start_trial(org, by="u-alice")
    assert second.access(org) == first.access(org)
    assert second.access(org)["bundle"]["state"] == "trial"
