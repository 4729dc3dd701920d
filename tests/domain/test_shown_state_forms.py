"""The recorded forms a store filters by agree with the state the views show.

``recorded_as_showing`` is what SQL filters the directory with; it is derived
from the same table as ``shown_state``, and this property holds the two
together on every recorded state, trial end and moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.bundle_state import recorded_as_showing, recorded_as_turning, shown_state
from domain.facts import BundleState

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

recorded_states = st.sampled_from(BundleState.ALL)
#: Moments near T0, so that "just before", "exactly at" and "just after" all come up.
moments = st.integers(min_value=-3, max_value=3).map(lambda n: T0 + timedelta(microseconds=n))
trial_ends = st.none() | moments


@given(recorded=recorded_states, trial_ends_at=trial_ends, now=moments)
def test_a_row_matches_the_forms_of_exactly_the_state_it_shows(
    recorded: str, trial_ends_at: datetime | None, now: datetime
) -> None:
    shown = shown_state(recorded, trial_ends_at, now)
    for state in BundleState.ALL:
        matched = any(f.matches(recorded, trial_ends_at, now) for f in recorded_as_showing(state))
        assert matched == (state == shown), (state, shown)


@given(recorded=recorded_states, trial_ends_at=trial_ends, now=moments)
def test_the_sweep_finds_exactly_the_rows_that_time_alone_has_turned(
    recorded: str, trial_ends_at: datetime | None, now: datetime
) -> None:
    turned = shown_state(recorded, trial_ends_at, now) != recorded
    assert any(f.matches(recorded, trial_ends_at, now) for f in recorded_as_turning()) == turned


def test_a_trial_shows_expired_from_the_instant_it_ends() -> None:
    assert shown_state(BundleState.TRIAL, T0, T0 - timedelta(microseconds=1)) == "trial"
    assert shown_state(BundleState.TRIAL, T0, T0) == "trial_expired"
    assert shown_state(BundleState.CANCELLED, T0, T0 + timedelta(days=1)) == "cancelled"
