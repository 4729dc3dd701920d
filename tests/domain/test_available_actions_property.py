"""``available_actions`` never lies: at any moment of any story, an action is
listed exactly when the command would accept it from a user with every right."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.access_view import access_view
from domain.errors import DomainError
from domain.facts import facts_from_dict, facts_to_dict
from domain.organization import Organization
from tests.domain.builders import (
    CATALOG,
    PAYMENT,
    T0,
    Plan,
    begin_checkout,
    organization_with,
)

ALICE = "u-alice"  # the owner and super admin of every purchased service


def attempt(org: Organization, action: str, now: datetime) -> bool:
    """Whether the command for ``action`` is accepted (tried on a copy)."""
    trial_copy = copy.deepcopy(org)
    commands: dict[str, Callable[[], object]] = {
        "start_trial": lambda: trial_copy.start_trial(by=ALICE, at=now, catalog=CATALOG),
        "extend_trial": lambda: trial_copy.extend_trial(by=ALICE, at=now, catalog=CATALOG),
        "cancel_trial": lambda: trial_copy.cancel_trial(by=ALICE, at=now, catalog=CATALOG),
        "upgrade": lambda: begin_checkout(trial_copy, by=ALICE, at=now, checkout_id="chk_probe"),
    }
    try:
        commands[action]()
    except DomainError:
        return False
    return True


STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["start_trial", "extend_trial", "cancel_trial", "upgrade", "complete", "fail", "expire"]
        ),
        st.integers(min_value=0, max_value=40 * 24),  # hours to wait before the step
    ),
    max_size=8,
)


def play(steps: list[tuple[str, int]]) -> Iterator[tuple[Organization, datetime]]:
    """Walk a story, yielding the organization and the moment before each step."""
    org = organization_with(
        Plan("crm", super_admin=ALICE), Plan("desk", super_admin=ALICE), owner=ALICE
    )
    now = T0
    for number, (step, wait_hours) in enumerate(steps):
        now += timedelta(hours=wait_hours)
        yield org, now
        pending = org.facts.pending_checkout
        try:
            if step == "complete" and pending is not None:
                org.complete_checkout(
                    checkout_id=pending.checkout_id,
                    payment=PAYMENT,
                    at=now,
                    invoice_number=f"SS-{now.year}-{number + 1:06d}",
                    invoice_issued_at=now,
                    catalog=CATALOG,
                )
            elif step == "fail" and pending is not None:
                org.fail_checkout(checkout_id=pending.checkout_id, reason="card_declined", at=now)
            elif step == "expire":
                org.expire_trial(at=now)
            elif step == "upgrade":
                begin_checkout(org, by=ALICE, at=now, checkout_id=f"chk_{number}")
            elif step in ("start_trial", "extend_trial", "cancel_trial"):
                getattr(org, step)(by=ALICE, at=now, catalog=CATALOG)
        except DomainError:
            pass  # a refused step records nothing; the story goes on
    yield org, now


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_available_actions_are_exactly_the_commands_that_would_succeed(
    steps: list[tuple[str, int]],
) -> None:
    for org, now in play(steps):
        listed = access_view(org.facts, CATALOG, now).bundle.available_actions
        for action in ("start_trial", "extend_trial", "cancel_trial", "upgrade"):
            assert (action in listed) == attempt(org, action, now), (action, now, org.facts)


@settings(max_examples=100, deadline=None)
@given(STEPS)
def test_the_facts_of_any_story_survive_their_json_form_and_a_replay(
    steps: list[tuple[str, int]],
) -> None:
    *_, (org, _) = play(steps)
    as_json = json.loads(json.dumps(facts_to_dict(org.facts)))
    assert facts_from_dict(as_json) == org.facts
    replayed = None
    for event in org.collect_events():
        replayed = event.fold(replayed)  # type: ignore[attr-defined]
    assert replayed == org.facts
