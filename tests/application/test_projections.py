"""The organization views as projections of the log, on every store.

Each test reads as a sentence about the read side: views equal the write
model, the directory pages and filters by the state shown now, a failed
batch leaves nothing behind, concurrent followers apply each event once,
and ``min_position`` never answers with an older view.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking

from application.bootstrap import Services, build_services
from application.errors import OrganizationNotFound, ViewNotCaughtUp
from application.projections import views as views_module
from application.projections.read_model import ViewSettings
from application.projections.rebuild import rebuild_views
from application.projections.rows import OrganizationRow
from application.projections.views import OrganizationViews, OrganizationViewsProjection
from application.schema import schema_lock
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.errors import InvalidRequest
from tests.application.helpers import record_crm, record_desk, register
from tests.conftest import empty_postgres_tables

API_FOLLOWS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)
WORKER_FOLLOWS = ViewSettings(follow_on_read=False, min_position_timeout=0.05)


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS)
    yield built
    built.close()


def without_position(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if key != "position"}


def test_the_access_view_equals_the_write_model_at_every_step_of_the_story(
    services: Services, clock: ManualClock
) -> None:
    app = services.app
    org = register(app)
    record_crm(app, org)
    record_desk(app, org, super_admin="u-alice")
    steps = [
        lambda: app.start_trial(org, by="u-alice"),
        lambda: clock.advance(timedelta(days=30)),
        lambda: app.expire_trial(org),
        lambda: app.extend_trial(org, by="u-alice"),
        lambda: app.cancel_trial(org, by="u-alice"),
    ]
    for step in steps:
        result = step()
        position = getattr(result, "position", None)
        projected = services.read_model.access(org, min_position=position)
        assert without_position(projected) == without_position(app.access(org))
        if position is not None:
            assert projected["position"] == position


def test_a_view_row_holds_the_organizations_version_and_latest_position(
    services: Services,
) -> None:
    org = register(services.app)
    recorded = services.app.start_trial(org, by="u-owner")
    view = services.read_model.access(org, min_position=recorded.position)
    assert (view["version"], view["position"]) == (recorded.version, recorded.position)


def test_an_unknown_organization_is_not_found(services: Services) -> None:
    with pytest.raises(OrganizationNotFound):
        services.read_model.access(uuid4())


def test_the_directory_pages_by_id_with_a_cursor(services: Services) -> None:
    ids = sorted(str(register(services.app, name=f"Org {n}")) for n in range(5))
    first = services.read_model.organizations(limit=2)
    second = services.read_model.organizations(limit=2, after=first["next"])
    last = services.read_model.organizations(limit=2, after=second["next"])
    pages = [first, second, last]
    assert [o["id"] for page in pages for o in page["organizations"]] == ids
    assert last["next"] is None
    assert first["organizations"][0]["state"] == "none"


def test_the_directory_shows_a_trial_past_its_end_as_expired_before_the_sweep(
    services: Services, clock: ManualClock
) -> None:
    in_trial = register(services.app, name="In trial")
    services.app.start_trial(in_trial, by="u-owner")
    register(services.app, name="No trial")
    clock.advance(timedelta(days=30))

    expired = services.read_model.organizations(state="trial_expired")["organizations"]
    assert [(o["id"], o["state"], o["recorded_state"]) for o in expired] == [
        (str(in_trial), "trial_expired", "trial")
    ]
    assert services.read_model.organizations(state="trial")["organizations"] == []
    assert services.read_model.views.trials_due(now=clock.now(), limit=10) == [str(in_trial)]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"state": "sleeping"}, "state"), ({"limit": 0}, "limit"), ({"after": "x"}, "after")],
)
def test_the_directory_refuses_malformed_queries(
    services: Services, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.read_model.organizations(**arguments)
    assert field in refused.value.details


def test_a_failed_batch_leaves_neither_rows_nor_position_behind(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = services.app
    orgs = [register(app, name=f"Org {n}") for n in range(3)]
    real_fold = views_module.fold_run
    folded: list[int] = []

    def fold_then_crash(row: OrganizationRow | None, events: Any, position: int) -> OrganizationRow:
        folded.append(position)
        if len(folded) == 3:  # the third organization of the batch
            raise RuntimeError("the process dies here")
        return real_fold(row, events, position)

    monkeypatch.setattr(views_module, "fold_run", fold_then_crash)
    with pytest.raises(RuntimeError):
        services.read_model.catch_up()
    assert services.read_model.views.position() == 0
    assert services.read_model.views.access_row(str(orgs[0])) is None

    monkeypatch.setattr(views_module, "fold_run", real_fold)
    assert services.read_model.catch_up() == app.recorder.max_notification_id()
    assert rebuild_views(services.app, services.read_model.views).consistent


def test_one_batch_of_interleaved_organizations_folds_like_one_event_at_a_time(
    services: Services,
) -> None:
    app = services.app
    orgs = [register(app, name=f"Org {n}") for n in range(3)]
    for org in orgs:  # each organization's events spread through the log
        record_crm(app, org)
    for org in orgs[:2]:
        record_desk(app, org, super_admin="u-alice")
    app.start_trial(orgs[0], by="u-alice")
    services.read_model.follower.batch_size = 1
    services.read_model.catch_up()
    event_at_a_time = services.read_model.views.snapshot()
    assert event_at_a_time.position == app.recorder.max_notification_id()

    notifications = app.recorder.select_notifications(start=1, limit=100)
    beside = services.read_model.views.beside("one_batch")
    one_batch = OrganizationViewsProjection(view=beside).process_batch(
        [
            (app.mapper.to_domain_event(n), Tracking("SuiteSubscriptions", n.id))
            for n in notifications
        ]
    )
    assert one_batch == len(notifications)
    assert beside.snapshot() == event_at_a_time
    beside.drop()


def test_reading_an_applied_position_again_changes_nothing(services: Services) -> None:
    org = register(services.app)
    services.read_model.catch_up()
    before = services.read_model.views.snapshot()
    notifications = services.app.recorder.select_notifications(start=1, limit=10)
    replay = [
        (services.app.mapper.to_domain_event(n), Tracking("SuiteSubscriptions", n.id))
        for n in notifications
    ]
    assert services.read_model.follower.projection.process_batch(replay) == 0
    assert services.read_model.views.snapshot() == before
    assert services.read_model.access(org)["version"] == 1


def test_min_position_beyond_the_log_is_refused_at_once(services: Services) -> None:
    org = register(services.app)
    with pytest.raises(InvalidRequest) as refused:
        services.read_model.access(org, min_position=1_000)
    assert refused.value.code == "min_position_ahead_of_log"
    assert "min_position" in refused.value.details


def test_with_a_worker_following_reads_wait_for_it_and_never_answer_stale(
    shared_store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    api = build_services(
        shared_store_url, clock=clock, catalog=catalog, view_settings=WORKER_FOLLOWS
    )
    worker = build_services(
        shared_store_url, clock=clock, catalog=catalog, view_settings=WORKER_FOLLOWS
    )
    try:
        org = register(api.app)
        started = api.app.start_trial(org, by="u-owner")
        with pytest.raises(ViewNotCaughtUp):
            api.read_model.access(org, min_position=started.position)
        with pytest.raises(ViewNotCaughtUp):  # exists in the log, not yet in the view
            api.read_model.access(org)

        worker.read_model.catch_up()
        view = api.read_model.access(org, min_position=started.position)
        assert view["bundle"]["state"] == "trial"
        assert api.read_model.lag() == {
            "latest_position": started.position,
            "view_position": started.position,
            "lag": 0,
        }
    finally:
        api.close()
        worker.close()


def test_concurrent_followers_apply_every_event_exactly_once(
    shared_store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    writer = build_services(
        shared_store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS
    )
    followers = [
        build_services(shared_store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS)
        for _ in range(3)
    ]
    try:
        for n in range(20):
            org = register(writer.app, name=f"Org {n}")
            writer.app.start_trial(org, by="u-owner")
        for follower in followers:
            follower.read_model.follower.batch_size = 3  # many small, interleaved batches
        errors: list[BaseException] = []

        def follow(services: Services) -> None:
            try:
                services.read_model.catch_up()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=follow, args=(f,)) for f in followers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        report = rebuild_views(writer.app, writer.read_model.views)
        assert report.consistent, report.differences
        assert report.organizations == 20
        rows = writer.read_model.views.snapshot().access.values()
        assert {row.version for row in rows} == {2}
    finally:
        writer.close()
        for follower in followers:
            follower.close()


def test_rebuild_reports_each_differing_field_and_apply_swaps_the_rebuilt_rows_in(
    services: Services,
) -> None:
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    services.read_model.catch_up()
    assert rebuild_views(services.app, services.read_model.views).consistent

    views = services.read_model.views
    with views.changes() as changes:  # damage the live row behind the projection's back
        row = changes.row(str(org))
        assert row is not None
        changes.put(
            OrganizationRow(row.organization_id, row.facts, version=99, position=row.position)
        )

    report = rebuild_views(services.app, services.read_model.views)
    assert [(d.organization_id, d.field, d.live, d.rebuilt) for d in report.differences] == [
        (str(org), "access.version", 99, 2),
    ]
    assert not report.applied

    applied = rebuild_views(services.app, services.read_model.views, apply=True)
    assert applied.applied
    assert applied.applied_position == applied.latest_position
    assert services.read_model.access(org)["version"] == 2
    assert rebuild_views(services.app, services.read_model.views).consistent


def test_rebuild_calls_progress_and_leaves_no_fresh_tables_behind(services: Services) -> None:
    for n in range(3):
        register(services.app, name=f"Org {n}")
    calls: list[tuple[int, int]] = []
    report = rebuild_views(
        services.app,
        services.read_model.views,
        progress=lambda done, target: calls.append((done, target)),
    )
    assert report.organizations == 3
    assert calls
    assert calls[-1][0] == report.live_position
    tables = services.tables
    if tables.kind == "memory":
        return
    with tables.transaction() as cursor:
        if tables.kind == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cursor.execute("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
        names = [row["name"] for row in cursor.fetchall()]
    assert not [name for name in names if name.startswith("rebuild_")]


def test_an_organization_id_is_one_uuid_per_row(services: Services) -> None:
    org = register(services.app)
    services.read_model.catch_up()
    entry = services.read_model.organizations()["organizations"][0]
    assert UUID(entry["id"]) == org


def test_a_rebuild_swapped_in_while_events_arrive_and_a_follower_runs_loses_nothing(
    shared_store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    writer = build_services(
        shared_store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS
    )
    follower, rebuilder = (
        build_services(shared_store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS)
        for _ in range(2)
    )
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(40):
                register(writer.app, name=f"Org {n}")
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    def follow() -> None:
        try:
            while not done.wait(0.005):  # a follower's poll interval, however short
                follower.read_model.catch_up()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write), threading.Thread(target=follow)]
    try:
        for thread in threads:
            thread.start()
        swaps = [
            rebuild_views(rebuilder.app, rebuilder.read_model.views, apply=True) for _ in range(3)
        ]
        for thread in threads:
            thread.join()
        assert errors == []
        assert all(swap.applied for swap in swaps)
        follower.read_model.catch_up()
        final = rebuild_views(writer.app, writer.read_model.views)
        assert final.consistent, final.differences[:5]
        assert final.organizations == 40
    finally:
        writer.close()
        follower.close()
        rebuilder.close()


@pytest.mark.postgres
def test_on_postgresql_the_follower_wakes_on_notify(
    postgres_database: str, clock: ManualClock, catalog: Catalog
) -> None:
    empty_postgres_tables(postgres_database)
    settings = ViewSettings(follow_on_read=False, min_position_timeout=10.0)
    api = build_services(postgres_database, clock=clock, catalog=catalog, view_settings=settings)
    worker = build_services(postgres_database, clock=clock, catalog=catalog, view_settings=settings)
    stop = threading.Event()
    # A poll interval far beyond the wait below: only a NOTIFY can wake it in time.
    following = threading.Thread(
        target=worker.read_model.follower.follow, args=(stop,), kwargs={"poll_interval": 600}
    )
    following.start()
    try:
        org = register(api.app)
        started = api.app.start_trial(org, by="u-owner")
        view = api.read_model.access(org, min_position=started.position)
        assert view["bundle"]["state"] == "trial"
    finally:
        stop.set()
        following.join(timeout=10)
        api.close()
        worker.close()


def test_views_of_the_old_layout_take_the_directory_into_the_access_table(
    services: Services, clock: ManualClock
) -> None:
    """Until the directory became columns of the access table it was a table of its own:
    opening such views moves its lines over, drops it, and reads them as before —
    also when several processes open them at once."""
    orgs = [register(services.app, name=f"Org {n}") for n in range(3)]
    services.app.start_trial(orgs[0], by="u-owner")
    services.read_model.catch_up()
    live = services.read_model.views
    old = OrganizationViews(live.datastore, live.dialect, "old_layout", live.log_table)
    uid, integer, text, moment, facts = live.dialect.types
    numbers = f"version {integer} NOT NULL, position {integer} NOT NULL"
    with live.datastore.transaction(commit=True) as cursor:  # the old release's tables
        cursor.execute(
            f"CREATE TABLE {old.tracking} (application_name {text} PRIMARY KEY, "
            f"notification_id {integer})"
        )
        cursor.execute(
            f"CREATE TABLE {old.access} (organization_id {uid} PRIMARY KEY, {numbers}, "
            f"facts {facts} NOT NULL)"
        )
        cursor.execute(
            f"CREATE TABLE {old.table('directory')} (organization_id {uid} PRIMARY KEY, "
            f"name {text} NOT NULL, recorded_state {text} NOT NULL, trial_ends_at {moment}, "
            f"{numbers}, contract_due_at {moment})"
        )
        cursor.execute(
            f"INSERT INTO {old.access} SELECT organization_id, version, position, facts "
            f"FROM {live.access}"
        )
        cursor.execute(
            f"INSERT INTO {old.table('directory')} SELECT organization_id, name, recorded_state, "
            f"trial_ends_at, version, position, contract_due_at FROM {live.access}"
        )
        cursor.execute(f"INSERT INTO {old.tracking} SELECT * FROM {live.tracking}")

    # Worker processes start at once: each opens its views under the schema
    # lock (as construct_views does), so only the first moves the lines and
    # drops the old table; the others find the new layout.
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def open_views() -> None:
        barrier.wait()
        try:
            with schema_lock(services.app.env):
                OrganizationViews(
                    live.datastore, live.dialect, "old_layout", live.log_table
                ).create_table()
        except BaseException as failure:  # reported below, not lost in the thread
            failures.append(failure)

    openers = [threading.Thread(target=open_views) for _ in range(3)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    assert failures == []
    old.create_table()  # idempotent once moved

    try:
        assert old.snapshot() == live.snapshot()
        now = clock.now()
        shown = old.directory(now=now, state="trial", after=None, limit=10)
        assert [entry.organization_id for entry in shown] == [str(orgs[0])]
        gone = live.datastore.transaction(commit=False)
        with pytest.raises(Exception, match="old_layout_directory"), gone as cursor:
            cursor.execute(f"SELECT * FROM {old.table('directory')}")
    finally:
        old.drop()
