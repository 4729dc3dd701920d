"""The directory's state filter, run by each store, agrees with the domain's rule.

The SQL stores filter by the state shown *now* with a predicate generated
from ``domain.bundle_state`` (the directory holds only the recorded state and
the trial's end). Whatever rows the views hold and whatever the time, the
organizations a store lists under a state are exactly those whose
``shown_state`` is that state, and the expiry sweep finds exactly those that
time alone has turned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.projections.read_model import construct_views
from application.projections.rows import OrganizationRow
from application.service import SuiteSubscriptions
from domain.bundle_state import shown_state
from domain.facts import BundleState, OrganizationFacts, TrialFacts

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
IDS = [str(UUID(int=n + 1)) for n in range(6)]

moments = st.integers(min_value=-3, max_value=3).map(lambda n: T0 + timedelta(microseconds=n))
rows = st.lists(
    st.tuples(st.sampled_from(BundleState.ALL), st.none() | moments),
    min_size=len(IDS),
    max_size=len(IDS),
)


def _facts(
    organization_id: str, recorded: str, trial_ends_at: datetime | None
) -> OrganizationFacts:
    trial = (
        None
        if trial_ends_at is None
        else TrialFacts(
            started_at=trial_ends_at - timedelta(days=30),
            started_by="u-alice",
            ends_at=trial_ends_at,
            extensions_used=0,
            carried_over=(),
            usable_in_bundle=(),
            standalone_only=(),
            trial_services=(),
        )
    )
    return OrganizationFacts(
        organization_id=organization_id,
        name="Acme",
        country="JP",
        owner_user_id="u-owner",
        registered_at=T0 - timedelta(days=60),
        bundle_state=recorded,
        trial=trial,
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(held=rows, now=moments)
def test_every_store_lists_under_a_state_exactly_the_rows_that_show_it(
    app: SuiteSubscriptions, held: list[tuple[str, datetime | None]], now: datetime
) -> None:
    views = construct_views(app)
    position = views.position()
    with views.changes() as changes:
        for organization_id, (recorded, ends) in zip(IDS, held, strict=True):
            changes.put(
                OrganizationRow(organization_id, _facts(organization_id, recorded, ends), 1, 1)
            )
        changes.track(position + 1)
    shown = {
        organization_id: shown_state(recorded, ends, now)
        for organization_id, (recorded, ends) in zip(IDS, held, strict=True)
    }
    for state in BundleState.ALL:
        listed = views.directory(now=now, state=state, after=None, limit=len(IDS) + 1)
        assert [entry.organization_id for entry in listed] == [
            organization_id for organization_id in IDS if shown[organization_id] == state
        ], state
    turned = {
        organization_id
        for organization_id, (recorded, _) in zip(IDS, held, strict=True)
        if shown[organization_id] != recorded
    }
    assert set(views.trials_due(now=now, limit=len(IDS) + 1)) == turned
