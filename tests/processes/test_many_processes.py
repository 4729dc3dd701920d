"""Many processes on one PostgreSQL database: gunicorn ``-w 4`` plus ``suitesub worker``.

- N identical concurrent commands have exactly one effect;
- N racing upgrades with different keys charge the card once and record one
  UpgradePurchased;
- a worker killed with SIGKILL mid-stream and restarted leaves every view
  equal to a fresh rebuild (no lost or duplicated rows);
- the whole story over HTTP reads its own writes with ``min_position`` while
  the API only reads the views and the worker follows the log and sweeps;
- processes starting at once on a fresh database create the schema once.

Waits are on positions (``/readyz`` view lag, the views' tracked position),
never on fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.bootstrap import build_services
from application.projections.rebuild import rebuild_views
from domain.clock import ManualClock
from tests.conftest import T0, fresh_postgres_database
from tests.interface.conftest import CRM_YEARLY, DESK_MONTHLY, UPGRADE_BODY
from tests.processes.deployment import (
    CATCH_UP_TIMEOUT,
    OPERATOR,
    SUITESUB,
    Deployment,
    at_once,
    user,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with fresh_postgres_database("processes") as url:
        logs = tmp_path_factory.mktemp("processes")
        running = Deployment(url, logs)
        try:
            running.start_api(workers=4)
            running.start_worker()
            yield running
        finally:
            running.stop()


def register(deployment: Deployment, name: str) -> str:
    status, body, _ = deployment.call(
        "POST",
        "/v1/organizations",
        token=OPERATOR,
        body={"name": name, "country": "JP", "owner_user_id": "u-owner"},
    )
    assert status == 201, body
    organization_id: str = body["id"]
    return organization_id


def events_of(deployment: Deployment, organization_id: str) -> list[str]:
    status, page, _ = deployment.call(
        "GET", f"/v1/organizations/{organization_id}/events?limit=500", token=OPERATOR
    )
    assert status == 200, page
    return [event["type"] for event in page["events"]]


def test_identical_concurrent_registrations_with_one_key_create_one_organization(
    deployment: Deployment,
) -> None:
    body = {"name": "Once Only KK", "country": "JP", "owner_user_id": "u-owner"}
    answers = at_once(
        8,
        lambda _i: deployment.call(
            "POST",
            "/v1/organizations",
            token=OPERATOR,
            body=body,
            headers={"Idempotency-Key": "register-once-only"},
        ),
    )
    created = {answer[1]["id"] for answer in answers if answer[0] == 201}
    others = {answer[1]["error"]["code"] for answer in answers if answer[0] != 201}
    assert len(created) == 1
    assert others <= {"idempotency_key_in_use"}
    position = max(answer[1]["position"] for answer in answers if answer[0] == 201)
    status, page, _ = deployment.call(
        "GET", f"/v1/organizations?limit=500&min_position={position}", token=OPERATOR
    )
    assert status == 200, page
    assert [o["id"] for o in page["organizations"] if o["name"] == "Once Only KK"] == list(created)


def test_identical_concurrent_trial_starts_have_exactly_one_effect(
    deployment: Deployment,
) -> None:
    org = register(deployment, "Trial Race KK")
    answers = at_once(
        8,
        lambda _i: deployment.call(
            "POST", f"/v1/organizations/{org}/trial", token=user(org, "u-owner"), body={}
        ),
    )
    statuses = sorted(answer[0] for answer in answers)
    assert statuses == [201] + [409] * 7
    assert {a[1]["error"]["code"] for a in answers if a[0] == 409} == {"trial_already_used"}
    assert events_of(deployment, org).count("TrialStarted") == 1


def test_racing_upgrades_with_different_keys_charge_once(deployment: Deployment) -> None:
    org = register(deployment, "Upgrade Race KK")
    status, body, _ = deployment.call(
        "PUT", f"/v1/organizations/{org}/services/crm/subscription", token=OPERATOR, body=CRM_YEARLY
    )
    assert status == 200, body
    alice = user(org)
    status, quote, _ = deployment.call(
        "POST", f"/v1/organizations/{org}/upgrade/quote", token=alice, body=UPGRADE_BODY
    )
    assert status == 200, quote
    purchase = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": quote["total"]}
    answers = at_once(
        6,
        lambda i: deployment.call(
            "POST",
            f"/v1/organizations/{org}/upgrade",
            token=alice,
            body=purchase,
            headers={"Idempotency-Key": f"upgrade-race-{i}"},
        ),
    )
    statuses = sorted(answer[0] for answer in answers)
    assert statuses == [201] + [409] * 5, answers
    assert {a[1]["error"]["code"] for a in answers if a[0] == 409} <= {
        "checkout_in_progress",
        "bundle_already_active",
    }
    # The only upgrade of this module's database: its gateway table holds one charge.
    with psycopg.connect(deployment.database_url) as connection:
        charges = connection.execute("SELECT status, amount FROM sandbox_charges").fetchall()
    receipt = next(a[1] for a in answers if a[0] == 201)
    assert [charge[1] for charge in charges] == [receipt["total"]]
    assert events_of(deployment, org).count("UpgradePurchased") == 1

    status, view, _ = deployment.call(
        "GET", f"/v1/organizations/{org}/access?min_position={receipt['position']}", token=alice
    )
    assert status == 200, view
    assert view["bundle"]["state"] == "active"


def test_a_worker_killed_mid_stream_resumes_and_the_views_equal_a_rebuild(
    deployment: Deployment,
) -> None:
    for worker in deployment.workers:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    services = build_services(deployment.database_url, clock=ManualClock(T0))
    try:
        start = services.read_model.views.position()
        for n in range(150):
            registered = services.app.register_organization(
                name=f"Bulk {n}", country="JP", owner_user_id="u-owner"
            )
            services.app.start_trial(UUID(registered.organization_id), by="u-owner")
        latest = services.read_model.follower.latest_position()
        assert latest - start >= 300

        slow = deployment.start_worker("--batch-size", "5")
        mid_stream = start + 40
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while services.read_model.views.position() < mid_stream:
            assert time.monotonic() < deadline, "the worker did not start applying"
            time.sleep(0.01)
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=15)
        killed_at = services.read_model.views.position()
        assert start < killed_at < latest, "the kill should land mid-stream"

        deployment.start_worker()
        deployment.wait_until_views_caught_up(at_least=latest)
        report = rebuild_views(services.app, services.read_model.views)
        assert report.consistent, report.differences[:5]
        assert report.live_position >= latest
        trial_rows = [
            row
            for row in services.read_model.views.snapshot().access.values()
            if row.facts.name.startswith("Bulk ")
        ]
        assert len(trial_rows) == 150
        assert {row.version for row in trial_rows} == {2}
    finally:
        services.close()


@pytest.fixture
def two_api_workers(tmp_path: Path) -> Iterator[Deployment]:
    """gunicorn ``-w 2`` and one ``suitesub worker`` on a database of their own."""
    with fresh_postgres_database("story") as url:
        running = Deployment(url, tmp_path)
        try:
            running.start_api(workers=2)
            running.start_worker()
            yield running
        finally:
            running.stop()


def test_the_whole_story_over_http_reads_its_own_writes_while_the_worker_follows(
    two_api_workers: Deployment,
) -> None:
    deployment = two_api_workers

    def call(method: str, path: str, token: str, body: Any = None, **kw: Any) -> Any:
        status, answer, _ = deployment.call(
            method, f"/v1/organizations/{org}{path}", token=token, body=body, **kw
        )
        return status, answer

    def view_at(position: int) -> Any:
        status, view = call("GET", f"/access?min_position={position}", alice)
        assert status == 200, view
        return view

    org = register(deployment, "Story KK")
    alice, bob = user(org, "u-alice"), user(org, "u-bob")
    assert call("PUT", "/services/crm/subscription", OPERATOR, CRM_YEARLY)[0] == 200
    assert call("PUT", "/services/desk/subscription", OPERATOR, DESK_MONTHLY)[0] == 200

    status, refused = call("POST", "/trial", alice, {})
    assert (status, refused["error"]["code"]) == (403, "trial_initiator_cannot_carry_over")
    unified = {"super_admin": "u-alice", "admins": ["u-bob"]}
    assert call("PUT", "/services/desk/admins", bob, unified)[0] == 200
    status, started = call("POST", "/trial", alice, {})
    assert status == 201, started

    view = view_at(started["position"])
    assert view["bundle"]["state"] == "trial"
    assert view["position"] == started["position"]
    services = {service["code"]: service for service in view["services"]}
    assert services["crm"]["access"] == "bundle"
    assert services["desk"]["access"] == "standalone"

    status, moved, _ = deployment.call(
        "POST", "/v1/test-clock", token=OPERATOR, body={"advance_days": 31}
    )
    assert status == 200, moved
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while "TrialExpired" not in events_of(deployment, org):  # the worker's sweep
        assert time.monotonic() < deadline, "the worker's sweep did not record TrialExpired"
        time.sleep(0.05)
    status, page = call("GET", "/events?limit=100", OPERATOR)
    expired_at = next(e["position"] for e in page["events"] if e["type"] == "TrialExpired")
    assert view_at(expired_at)["bundle"]["state"] == "trial_expired"

    status, extended = call("POST", "/trial/extension", alice, {})
    assert status == 200, extended
    view = view_at(extended["position"])
    assert (view["bundle"]["state"], view["bundle"]["days_left"]) == ("trial", 15)

    status, quote = call("POST", "/upgrade/quote", alice, UPGRADE_BODY)
    assert status == 200, quote
    purchase = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": quote["total"]}
    status, receipt = call(
        "POST", "/upgrade", alice, purchase, headers={"Idempotency-Key": "story-upgrade"}
    )
    assert status == 201, receipt
    view = view_at(receipt["position"])
    assert view["bundle"]["state"] == "active"
    assert {s["contract"] for s in view["services"]} == {"bundle"}


def test_processes_starting_at_once_on_a_fresh_database_create_the_schema_once(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database("schema_race") as url:
        environment = {**os.environ, "SUITE_DATABASE_URL": url}
        environment.pop("SUITE_VIEW_FOLLOWER", None)
        starting = [
            subprocess.Popen(  # every one creates every table it needs
                [SUITESUB, "worker", "--once"],
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(6)
        ]
        outputs = [process.communicate(timeout=60)[0].decode() for process in starting]
        assert [process.returncode for process in starting] == [0] * 6, outputs
        with psycopg.connect(url) as connection:
            tables = {
                row[0]
                for row in connection.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
        assert {"suitesubscriptions_events", "views_access", "views_tracking"} <= tables
