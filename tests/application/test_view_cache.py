"""The API process's cache of access rows on PostgreSQL, evicted by the views' NOTIFY.

The API only reads (``SUITE_VIEW_FOLLOWER=worker``); a second set of
services plays ``suitesub worker`` and is called by hand. Every test waits
on positions the cache was told about, never on time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from application.bootstrap import Services, build_services
from application.errors import ViewNotCaughtUp
from application.projections.read_model import ViewSettings
from application.projections.rebuild import rebuild_views
from application.projections.rows import OrganizationRow
from application.projections.view_cache import (
    FLUSH,
    MAX_PAYLOAD,
    ViewCache,
    change_payload,
    channel_name,
)
from application.projections.views import AccessRead
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from tests.application.helpers import register
from tests.conftest import empty_postgres_tables
from tests.interface.conftest import SECRET, Caller

pytestmark = pytest.mark.postgres

CACHED = ViewSettings(follow_on_read=False, min_position_timeout=0.05, view_cache=True)
WAIT = 10.0  # seconds: a bound for the listener, never expected to be reached


@pytest.fixture
def deployment(
    postgres_database: str, clock: ManualClock, catalog: Catalog
) -> Iterator[tuple[Services, Services]]:
    """(api, worker) over one fresh PostgreSQL database; the api's listener is up."""
    empty_postgres_tables(postgres_database)
    worker = build_services(postgres_database, clock=clock, catalog=catalog)
    api = build_services(postgres_database, clock=clock, catalog=catalog, view_settings=CACHED)
    cache = api.read_model.view_cache
    assert cache is not None
    cache.start()
    assert cache.wait_until_live(WAIT)
    yield api, worker
    api.close()
    worker.close()


def _cache(services: Services) -> ViewCache:
    cache = services.read_model.view_cache
    assert cache is not None
    return cache


def _applied(worker: Services, api: Services) -> int:
    """The worker applies the log; returns once the api's cache heard of it."""
    position = worker.read_model.catch_up()
    assert _cache(api).wait_for_position(position, WAIT)
    return position


def _no_database_reads(api: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> AccessRead:
        raise AssertionError("read from the database")

    monkeypatch.setattr(api.read_model.access_reader, "row", refuse)


def test_a_row_read_once_is_then_served_from_the_process(
    deployment: tuple[Services, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, worker = deployment
    org = register(api.app)
    started = api.app.start_trial(org, by="u-owner")
    _applied(worker, api)
    first = api.read_model.access(org)
    assert (first["version"], first["position"]) == (2, started.position)

    _no_database_reads(api, monkeypatch)
    again = api.read_model.access(org, min_position=started.position)
    assert again == first


def test_a_change_applied_by_the_worker_evicts_the_row(
    deployment: tuple[Services, Services],
) -> None:
    api, worker = deployment
    org, other = register(api.app), register(api.app, "Other")
    _applied(worker, api)
    assert api.read_model.access(org)["bundle"]["state"] == "none"
    assert api.read_model.access(other)["version"] == 1
    cache = _cache(api)
    assert cache.get(str(org), None) is not None

    api.app.start_trial(org, by="u-owner")
    _applied(worker, api)
    assert cache.get(str(org), None) is None  # evicted
    assert cache.get(str(other), None) is not None  # untouched
    view = api.read_model.access(org)
    assert (view["version"], view["bundle"]["state"]) == (2, "trial")


def test_min_position_beyond_what_the_cache_heard_is_never_answered_from_it(
    deployment: tuple[Services, Services],
) -> None:
    api, worker = deployment
    org = register(api.app)
    _applied(worker, api)
    assert api.read_model.access(org)["version"] == 1  # cached at version 1
    started = api.app.start_trial(org, by="u-owner")  # the worker has not applied it

    with pytest.raises(ViewNotCaughtUp):
        api.read_model.access(org, min_position=started.position)
    assert api.read_model.access(org)["version"] == 1  # no min_position: as the views are

    _applied(worker, api)
    view = api.read_model.access(org, min_position=started.position)
    assert (view["version"], view["position"]) == (2, started.position)


def test_a_row_read_before_a_change_already_heard_of_is_not_kept(
    deployment: tuple[Services, Services],
) -> None:
    api, worker = deployment
    org = register(api.app)
    position = _applied(worker, api)
    row = api.read_model.views.access_row(str(org))
    assert row is not None
    cache = _cache(api)
    cache.offer(row, position - 1)  # a snapshot older than the cache's position
    assert cache.get(str(org), None) is None
    cache.offer(row, position)
    assert cache.get(str(org), None) == row


def test_audit_rebuild_apply_flushes_every_cached_row(
    deployment: tuple[Services, Services],
) -> None:
    api, worker = deployment
    org = register(api.app)
    api.app.start_trial(org, by="u-owner")
    _applied(worker, api)
    cache = _cache(api)
    heard = cache.heard
    views = worker.read_model.views
    with views.changes() as changes:  # damage the row at the same version, no new position
        row = changes.row(str(org))
        assert row is not None
        damaged = row.facts.updated(bundle_state="none", trial=None)
        changes.put(OrganizationRow(row.organization_id, damaged, row.version, row.position))
    assert cache.wait_for_heard(heard + 1, WAIT)  # the damage's own notification
    assert api.read_model.access(org)["bundle"]["state"] == "none"  # as stored, now cached
    assert cache.get(str(org), None) is not None

    heard = cache.heard
    report = rebuild_views(worker.app, worker.read_model.views, apply=True)
    assert report.applied
    assert _until_evicted(cache, str(org), heard)
    view = api.read_model.access(org)
    assert (view["version"], view["bundle"]["state"]) == (2, "trial")


def _until_evicted(cache: ViewCache, organization_id: str, heard: int) -> bool:
    """Wait (bounded) on the cache's notifications until the row is gone."""
    while cache.wait_for_heard(heard + 1, WAIT):
        if cache.get(organization_id, None) is None:
            return True
        heard = cache.heard
    return False


def test_a_lost_listener_empties_the_cache_and_serves_nothing_until_it_listens_again(
    deployment: tuple[Services, Services], postgres_database: str
) -> None:
    api, worker = deployment
    org = register(api.app)
    _applied(worker, api)
    api.read_model.access(org)
    cache = _cache(api)
    assert cache.get(str(org), None) is not None
    connection = cache._connection
    assert connection is not None
    backend = connection.info.backend_pid

    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with cache._changed:
        assert cache._changed.wait_for(
            lambda: not cache.live or cache._connection is not connection, WAIT
        )
    assert cache.get(str(org), None) is None  # flushed when the connection was lost

    # A change committed while the listener was down is seen after it reconnects.
    started = api.app.start_trial(org, by="u-owner")
    worker.read_model.catch_up()
    assert cache.wait_until_live(WAIT)
    assert cache._connection is not connection
    view = api.read_model.access(org)
    assert (view["version"], view["position"]) == (2, started.position)


def test_rows_expire_after_the_safety_ttl(deployment: tuple[Services, Services]) -> None:
    api, worker = deployment
    org = register(api.app)
    position = _applied(worker, api)
    row = api.read_model.views.access_row(str(org))
    assert row is not None
    cache = _cache(api)
    cache.ttl = 0.0
    cache.offer(row, position)
    assert cache.get(str(org), None) is None


def test_payloads_carry_the_position_and_ids_or_flush_when_too_long() -> None:
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(3)]
    assert change_payload(7, ids) == "7 " + " ".join(ids)
    assert change_payload(7, None) == f"7 {FLUSH}"
    many = [f"00000000-0000-4000-8000-{n:012d}" for n in range(MAX_PAYLOAD // 36)]
    assert change_payload(12, many) == f"12 {FLUSH}"


def test_apply_evicts_named_rows_flushes_and_never_moves_the_position_back() -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("no connection in this test")

    cache = ViewCache(never, "suite_views", never)
    cache.live = True
    rows = {
        key: OrganizationRow(key, None, 1, 1)  # type: ignore[arg-type]
        for key in ("a", "b", "c")
    }
    for row in rows.values():
        cache.offer(row, 0)
    cache.apply("5 a")
    assert (cache.position, sorted(cache._rows)) == (5, ["b", "c"])
    cache.apply("3 b")
    assert (cache.position, sorted(cache._rows)) == (5, ["c"])
    cache.apply(f"6 {FLUSH}")
    assert (cache.position, cache._rows) == (6, {})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, True),
        ({"SUITE_VIEW_CACHE": "off"}, False),
        ({"SUITE_VIEW_FOLLOWER": "api"}, False),
    ],
)
def test_the_cache_is_on_by_default_with_a_worker_on_postgres(
    env: dict[str, str], expected: bool
) -> None:
    assert ViewSettings.from_env("postgres", env).view_cache is expected
    assert ViewSettings.from_env("sqlite", env).view_cache is False


def test_over_http_read_your_writes_holds_with_the_cache(
    deployment: tuple[Services, Services],
) -> None:
    api, worker = deployment
    caller = Caller(create_app({"SERVICES": api, "JWT_SECRET": SECRET}).test_client())
    org = caller.register()
    _applied(worker, api)
    assert caller.as_user(org, "u-owner", "GET", "/access").status_code == 200  # cached
    started = caller.as_user(org, "u-owner", "POST", "/trial", json={})
    query = f"/access?min_position={started.json['position']}"

    waiting = caller.as_user(org, "u-owner", "GET", query)
    assert waiting.status_code == 503
    assert waiting.json["error"]["code"] == "view_not_caught_up"

    _applied(worker, api)
    caught_up = caller.as_user(org, "u-owner", "GET", query)
    assert caught_up.status_code == 200
    assert caught_up.json["bundle"]["state"] == "trial"
    assert caught_up.json["position"] == started.json["position"]


def test_each_schema_has_its_own_channel() -> None:
    assert channel_name("views") == channel_name("views", "public") == "suite_views"
    assert channel_name("views", "tenant_a") == "suite_tenant_a_views"
