"""The hostile-input corpus over HTTP: gunicorn and a real ``suitesub worker`` on
PostgreSQL (and gunicorn alone on SQLite, where the API follows the log).

Every request of tests/hostile_corpus.py is refused with a JSON error, the
log gains nothing, the worker keeps running and its views reach the log's
end with no event passed over, and a rebuild from the log agrees with them.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from application.bootstrap import build_services
from application.projections.rebuild import rebuild_views
from tests.conftest import fresh_postgres_database
from tests.hostile_corpus import HostileRequest, assert_refused, hostile_requests, sendable
from tests.interface.conftest import CRM_YEARLY
from tests.processes.deployment import OPERATOR, Deployment, user

pytestmark = [pytest.mark.slow]


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], scope="module"
)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        running = Deployment(f"sqlite:///{logs / 'suite.sqlite3'}", logs)
        try:
            running.start_api(workers=2)
            yield running
        finally:
            running.stop()
        return
    with fresh_postgres_database("hostile") as url:
        running = Deployment(url, logs)
        try:
            running.start_api(workers=2)
            running.start_worker()
            yield running
        finally:
            running.stop()


def _send(deployment: Deployment, request: HostileRequest, token: str) -> tuple[int, object]:
    connection = http.client.HTTPConnection(deployment.base, timeout=30)
    headers = {"Authorization": f"Bearer {token}", **request.headers}
    if request.raw is not None:
        payload = request.raw
    elif request.body is not None:
        payload = json.dumps(request.body).encode()
    else:
        payload = None
    if payload is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(request.method, request.path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, {"not_json": raw[:300].decode("latin-1")}
    finally:
        connection.close()


def _views_at_the_logs_end(deployment: Deployment, org: str) -> dict[str, object]:
    """A read-your-writes read at the log's end (the API follows the log on SQLite,
    waits for the worker on PostgreSQL), then /readyz."""
    latest = deployment.call("GET", "/readyz")[1]["views"]["latest_position"]
    status, body, _ = deployment.call(
        "GET", f"/v1/organizations/{org}/access?min_position={latest}", token=user(org)
    )
    assert status == 200, body
    return deployment.wait_until_views_caught_up()


def test_no_hostile_input_is_recorded_and_the_followed_views_match_a_rebuild(
    deployment: Deployment, tmp_path: Path
) -> None:
    status, body, _ = deployment.call(
        "POST",
        "/v1/organizations",
        token=OPERATOR,
        body={"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
    )
    assert status == 201, body
    org = body["id"]
    status, body, _ = deployment.call(
        "PUT", f"/v1/organizations/{org}/services/crm/subscription", token=OPERATOR, body=CRM_YEARLY
    )
    assert status == 200, body
    recorded = _views_at_the_logs_end(deployment, org)["latest_position"]
    sent = 0

    for request in hostile_requests(org):
        if not sendable(request):
            continue
        token = OPERATOR if request.operator else user(org)
        status, answer = _send(deployment, request, token)
        assert_refused(request, status, answer)
        sent += 1

    assert sent > 500
    views = _views_at_the_logs_end(deployment, org)
    assert views["latest_position"] == recorded  # nothing was recorded
    assert views["faults"] == {"count": 0, "faults": []}
    assert all(worker.poll() is None for worker in deployment.workers)
    services = build_services(deployment.database_url)
    try:
        report = rebuild_views(services.app, services.read_model.views)
        assert report.consistent, report.differences
        assert report.rebuilt_position == recorded
    finally:
        services.close()


@pytest.mark.postgres
def test_a_poisoned_event_neither_stops_the_worker_nor_any_other_organizations_views(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database("poisoned") as url:
        running = Deployment(url, tmp_path)
        try:
            running.start_api(workers=1)
            running.start_worker()
            services = build_services(url)
            try:
                # Written past the domain, as only a tool outside the service could.
                services.app.recorder.insert_events(
                    [StoredEvent(uuid4(), 1, "domain.events:OrganizationRegistered", b"\xff")]
                )
                poisoned_at = services.app.recorder.max_notification_id()
            finally:
                services.close()
            status, body, _ = running.call(
                "POST",
                "/v1/organizations",
                token=OPERATOR,
                body={"name": "After KK", "country": "JP", "owner_user_id": "u-owner"},
            )
            assert status == 201, body
            status, view, _ = running.call(
                "GET",
                f"/v1/organizations/{body['id']}/access?min_position={body['position']}",
                token=user(body["id"], "u-owner"),
            )
            assert status == 200, view  # the worker applied what came after
            views = running.wait_until_views_caught_up()
            assert [fault["position"] for fault in views["faults"]["faults"]] == [poisoned_at]
            assert all(worker.poll() is None for worker in running.workers)
        finally:
            running.stop()
