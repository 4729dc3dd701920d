"""A ``suitesub worker`` killed mid-delivery, and restarted, delivers every event.

On PostgreSQL the worker runs the webhooks' dispatcher. A real receiver on
127.0.0.1 (verifying every request with ``standardwebhooks``) holds one
organization's first request; the worker is killed with SIGKILL while that
request is in flight (and with whatever else it had claimed), the held request
is then let through (so the receiver handled it: the dead worker never heard
the answer), and a new worker is started. Every event id of the feed arrives;
an id arrives twice only if its delivery was in flight when the worker died —
at least once — and the test counts those.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import fresh_postgres_database
from tests.processes.deployment import CATCH_UP_TIMEOUT, OPERATOR, Deployment, user
from tests.receivers import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ORGANIZATIONS = 6
#: The dead worker's claims run out after this (wall clock); the new one takes them.
LEASE_SECONDS = "3"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with fresh_postgres_database("hooks_killed") as url:
        running = Deployment(url, tmp_path)
        running.environment["SUITE_WEBHOOKS_ALLOW_PRIVATE"] = "1"
        running.environment["SUITE_WEBHOOKS_LEASE_SECONDS"] = LEASE_SECONDS
        try:
            running.start_api(workers=1)
            yield running
        finally:
            running.stop()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    running = Receiver([], keep_alive=True).start()
    try:
        yield running
    finally:
        running.stop()


def until(condition: object, what: str, timeout: float = CATCH_UP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def feed_ids(deployment: Deployment) -> list[str]:
    status, page, _ = deployment.call("GET", "/v1/events?after=0&limit=500", token=OPERATOR)
    assert status == 200, page
    assert page["next"] is None
    return [e["id"] for e in page["events"]]


def first_of(deployment: Deployment, organization_id: str) -> str:
    """The id of the organization's first envelope in the feed."""
    status, page, _ = deployment.call("GET", "/v1/events?after=0&limit=500", token=OPERATOR)
    assert status == 200, page
    return str(next(e["id"] for e in page["events"] if e["organization_id"] == organization_id))


def in_flight(database_url: str) -> set[str]:
    """Event ids of the deliveries still pending: the dead worker's claims among them."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT event_id FROM webhook_deliveries WHERE status = 'pending'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_a_worker_killed_mid_delivery_and_restarted_delivers_every_event_id(
    deployment: Deployment, hooks: Receiver
) -> None:
    status, created, _ = deployment.call(
        "POST",
        "/v1/webhook-endpoints",
        token=OPERATOR,
        body={"url": hooks.url, "events": ["*"], "description": "killed worker"},
    )
    assert status == 201, created
    hooks.secrets.append(created["secret"])
    organizations = [deployment.register(f"Killed {n} KK") for n in range(ORGANIZATIONS)]
    held = organizations[2]
    hooks.behaviour.stall_organization = held
    for organization in organizations:
        status, answer, _ = deployment.call(
            "POST",
            f"/v1/organizations/{organization}/trial",
            token=user(organization, "u-owner"),
            body={},
        )
        assert status == 201, answer
    first = deployment.start_worker()
    # The held organization's first request is in flight: kill the worker now.
    assert hooks.stalled.acquire(timeout=CATCH_UP_TIMEOUT)
    first.send_signal(signal.SIGKILL)
    first.wait()
    expected = feed_ids(deployment)  # the worker had followed the log (one batch) before
    assert len(expected) == 2 * ORGANIZATIONS  # trial.started and access.changed each
    before_kill = Counter(hooks.accepted_ids())
    pending_at_kill = in_flight(deployment.database_url)
    held_ids = [i for i in expected if i in pending_at_kill]
    assert held_ids  # the held one (and its organization's later one) were not delivered
    hooks.behaviour.release.set()  # the receiver handles the held request; no one hears
    until(lambda: len(hooks.received) > sum(before_kill.values()), "the held request")

    second = deployment.start_worker()
    until(
        lambda: set(hooks.accepted_ids()) >= set(expected),
        "every event id to arrive after the restart",
    )
    arrived = Counter(hooks.accepted_ids())
    assert set(arrived) == set(expected)  # none missing, nothing unknown
    assert all(r.verified for r in hooks.received)
    duplicates = {event_id: n for event_id, n in arrived.items() if n > 1}
    # At least once: only a delivery in flight when the worker died comes twice.
    assert set(duplicates) <= pending_at_kill
    assert all(n == 2 for n in duplicates.values())
    print(f"duplicates after the kill: {len(duplicates)} of {len(expected)} ids")
    # The held request was handled after the kill: it is one of them.
    held_first = first_of(deployment, held)
    assert held_first in pending_at_kill
    assert duplicates.get(held_first) == 2
    # Order per organization held throughout: its envelopes arrived in log order.
    ids_of_held = [i for i in hooks.ids_of(held) if i in expected]
    assert list(dict.fromkeys(ids_of_held)) == [i for i in expected if i in set(ids_of_held)]

    def statuses() -> set[str]:
        status, shown, _ = deployment.call(
            "GET", f"/v1/webhook-endpoints/{created['id']}/deliveries?limit=100", token=OPERATOR
        )
        assert status == 200
        assert len(shown["deliveries"]) == len(expected)
        return {d["status"] for d in shown["deliveries"]}

    until(lambda: statuses() == {"delivered"}, "the new worker to record every delivery")
    assert second.poll() is None  # the new worker is still running
