"""The read side over HTTP: the directory for operators, read-your-writes, view lag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services, build_services
from application.projections.read_model import ViewSettings
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from tests.conftest import empty_postgres_tables
from tests.interface.conftest import SECRET, Caller, operator_headers, user_headers


@pytest.fixture
def caller(client: FlaskClient) -> Caller:
    return Caller(client)


def directory(client: FlaskClient, query: str = "") -> Any:
    return client.get(f"/v1/organizations{query}", headers=operator_headers())


def test_operators_page_through_the_directory_with_the_next_cursor(
    client: FlaskClient, caller: Caller
) -> None:
    ids = sorted(caller.register(name=f"Org {n}") for n in range(3))
    first = directory(client, "?limit=2")
    assert first.status_code == 200, first.json
    second = directory(client, f"?limit=2&after={first.json['next']}")
    listed = [o["id"] for o in first.json["organizations"] + second.json["organizations"]]
    assert listed == ids
    assert second.json["next"] is None
    assert first.json["organizations"][0].keys() >= {"id", "name", "state", "trial_ends_at"}


def test_the_directory_filters_by_the_state_shown_now(client: FlaskClient, caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()
    caller.register(name="Idle")
    caller.as_user(
        org, "u-bob", "PUT", "/services/desk/admins", json={"super_admin": "u-alice", "admins": []}
    )
    started = caller.as_user(org, "u-alice", "POST", "/trial", json={})
    assert started.status_code == 201, started.json
    caller.advance_days(31)

    expired = directory(client, "?state=trial_expired")
    assert [(o["id"], o["state"]) for o in expired.json["organizations"]] == [
        (org, "trial_expired")
    ]
    assert directory(client, "?state=trial").json["organizations"] == []


def test_the_directory_is_for_operators_only(client: FlaskClient, caller: Caller) -> None:
    org = caller.register()
    answer = client.get("/v1/organizations", headers=user_headers(org, "u-owner"))
    assert answer.status_code == 403
    assert answer.json["error"]["code"]


@pytest.mark.parametrize("query", ["?state=sleeping", "?limit=0", "?after=nope"])
def test_the_directory_refuses_malformed_queries(client: FlaskClient, query: str) -> None:
    answer = directory(client, query)
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "validation_failed"


def test_a_caller_reads_its_own_write_with_min_position(
    client: FlaskClient, caller: Caller
) -> None:
    org = caller.register()
    started = caller.as_user(org, "u-owner", "POST", "/trial", json={})
    position = started.json["position"]
    answer = caller.as_user(org, "u-owner", "GET", f"/access?min_position={position}")
    assert answer.status_code == 200, answer.json
    assert answer.json["bundle"]["state"] == "trial"
    assert answer.json["position"] == position


def test_readiness_exposes_the_view_lag(client: FlaskClient, caller: Caller) -> None:
    caller.register()
    answer = client.get("/readyz")
    assert answer.status_code == 200
    views = answer.json["views"]
    assert views["lag"] == views["latest_position"] - views["view_position"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_store_url_for_http(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        empty_postgres_tables(url)
        return url
    return f"sqlite:///{tmp_path}/shared.sqlite3"


@pytest.fixture
def worker_deployment(
    shared_store_url_for_http: str, clock: ManualClock, catalog: Catalog
) -> Iterator[tuple[FlaskClient, Services]]:
    """The API as on PostgreSQL: it only reads; a worker (here: called by hand) follows."""
    settings = ViewSettings(follow_on_read=False, min_position_timeout=0.05)
    api_services = build_services(
        shared_store_url_for_http, clock=clock, catalog=catalog, view_settings=settings
    )
    worker = build_services(shared_store_url_for_http, clock=clock, catalog=catalog)
    api = create_app({"SERVICES": api_services, "JWT_SECRET": SECRET})
    yield api.test_client(), worker
    api_services.close()
    worker.close()


def test_min_position_not_reached_in_time_is_503_with_retry_after_never_stale(
    worker_deployment: tuple[FlaskClient, Services],
) -> None:
    client, worker = worker_deployment
    caller = Caller(client)
    org = caller.register()
    worker.read_model.catch_up()
    started = caller.as_user(org, "u-owner", "POST", "/trial", json={})

    waiting = caller.as_user(
        org, "u-owner", "GET", f"/access?min_position={started.json['position']}"
    )
    assert waiting.status_code == 503
    assert waiting.headers["Retry-After"] == "1"
    assert waiting.json["error"]["code"] == "view_not_caught_up"
    lag = client.get("/readyz").json["views"]
    assert lag["lag"] == 1

    worker.read_model.catch_up()
    caught_up = caller.as_user(
        org, "u-owner", "GET", f"/access?min_position={started.json['position']}"
    )
    assert caught_up.status_code == 200
    assert caught_up.json["bundle"]["state"] == "trial"


def test_readiness_reports_the_invoices_views_own_lag(
    worker_deployment: tuple[FlaskClient, Services],
) -> None:
    client, worker = worker_deployment
    caller = Caller(client)
    org = caller.register()
    bought = caller.upgrade(org, "buy-1", user="u-owner")
    assert bought.status_code == 201, bought.json
    latest = bought.json["position"]
    worker.read_model.catch_up()  # the access and directory views only

    views = client.get("/readyz").json["views"]

    assert (views["latest_position"], views["lag"]) == (latest, 0)
    assert views["invoices"] == {"latest_position": latest, "view_position": 0, "lag": latest}
    worker.invoices.catch_up()
    caught_up = client.get("/readyz").json["views"]["invoices"]
    assert caught_up == {"latest_position": latest, "view_position": latest, "lag": 0}
