"""A real ``suitesub worker`` on PostgreSQL outlives the loss of its connections.

Its backends (the pool's and the ``LISTEN`` one) are terminated with
``pg_terminate_backend``; commands issued afterwards reach the views, the
sweep and the reconciliation still run, and it is the same process
throughout. The worker's connections are told apart by their
``application_name`` (libpq's ``PGAPPNAME``). Waits are on positions and
events (``/readyz``, ``min_position``), never on fixed sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.bootstrap import build_services
from domain.quote import UpgradeRequest
from tests.conftest import fresh_postgres_database
from tests.interface.conftest import CRM_YEARLY
from tests.processes.deployment import CATCH_UP_TIMEOUT, OPERATOR, Deployment, user

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKER_APP_NAME = "suitesub-worker-under-test"
CONTACT = {"company_name": "Reconnect KK", "country": "JP", "email": "billing@reconnect.example"}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with fresh_postgres_database("reconnect") as url:
        running = Deployment(url, tmp_path)
        try:
            running.start_api(workers=1)
            yield running
        finally:
            running.stop()


def worker_backends(database_url: str) -> list[tuple[int, str]]:
    """(pid, last statement) of every backend the worker holds now."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid, query FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (WORKER_APP_NAME,),
        ).fetchall()
    return [(int(pid), str(query)) for pid, query in rows]


def listening(database_url: str) -> bool:
    return any(query.startswith("LISTEN") for _, query in worker_backends(database_url))


def terminate_worker_backends(database_url: str) -> list[str]:
    """Terminate every backend of the worker; the statements they last ran."""
    backends = worker_backends(database_url)
    with psycopg.connect(database_url, autocommit=True) as admin:
        for pid, _ in backends:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return [query for _, query in backends]


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_worker_reconnects_after_its_backends_are_terminated_and_catches_up(
    deployment: Deployment,
) -> None:
    url = deployment.database_url
    worker = deployment.start_worker(
        "--reconcile-interval", "0.5", environment={"PGAPPNAME": WORKER_APP_NAME}
    )
    org = deployment.register("Reconnect KK")
    alice = user(org, "u-alice")

    def call(method: str, path: str, token: str, payload: Any = None) -> tuple[int, Any]:
        status, answer, _ = deployment.call(
            method, f"/v1/organizations/{org}{path}", token=token, body=payload
        )
        return status, answer

    def events() -> list[str]:
        return [e["type"] for e in call("GET", "/events?limit=500", OPERATOR)[1]["events"]]

    assert call("PUT", "/services/crm/subscription", OPERATOR, CRM_YEARLY)[0] == 200
    deployment.wait_until_views_caught_up()
    until(lambda: listening(url), "the worker's LISTEN connection")

    # 1. Every backend of the worker goes, the LISTEN one among them.
    killed = terminate_worker_backends(url)
    assert len(killed) >= 2
    assert any(query.startswith("LISTEN") for query in killed)

    status, started = call("POST", "/trial", alice, {})
    assert status == 201, started
    views = deployment.wait_until_views_caught_up(at_least=started["position"])
    assert views["view_position"] >= started["position"]
    status, view = call("GET", f"/access?min_position={started['position']}", alice)
    assert (status, view["bundle"]["state"]) == (200, "trial")
    until(lambda: listening(url), "a new LISTEN connection")

    # 2. Again, then the chores: the sweep records the trial's end, reconcile
    #    gives up on a checkout left started by a request that died.
    assert terminate_worker_backends(url)
    status, _, _ = deployment.call(
        "POST", "/v1/test-clock", token=OPERATOR, body={"advance_days": 31}
    )
    assert status == 200
    until(lambda: "TrialExpired" in events(), "the sweep to record TrialExpired")
    crashed = build_services(url, test_clock=True)
    try:
        request = UpgradeRequest("yearly", 5, ())
        crashed.app.begin_upgrade_checkout(
            UUID(org),
            by="u-alice",
            request=request,
            billing_contact={
                "company_name": "Reconnect KK",
                "country": "JP",
                "email": "b@r.example",
            },
            expected_total=crashed.app.quote(UUID(org), request).total,
            idempotency_key="died-in-flight",
        )
    finally:
        crashed.close()
    assert terminate_worker_backends(url)
    status, _, _ = deployment.call(
        "POST", "/v1/test-clock", token=OPERATOR, body={"advance_seconds": 11 * 60}
    )
    assert status == 200
    until(lambda: "UpgradeCheckoutFailed" in events(), "reconcile to fail the checkout")
    deployment.wait_until_views_caught_up()

    assert worker.poll() is None, "the worker exited"
    assert worker_backends(url), "the worker did not reconnect"
    log = (deployment.logs / "worker.log").read_text()
    assert log.count("lost the database connection") >= 3
    assert "reconnecting in" in log
    assert "Traceback" not in log
