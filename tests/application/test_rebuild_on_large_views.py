"""``rebuild_views`` on views too large to read in one transaction.

On PostgreSQL the library sets ``idle_in_transaction_session_timeout`` (5 s by
default): a transaction left idle while Python works between two statements
is terminated by the server. Reading tens of thousands of view rows and
building Python objects from them inside one transaction trips it, so the
comparison and the swap must read in short pages and keep Python's work out
of open transactions. Rather than building 67 000 rows, these tests lower
the timeout to one second and make the per-row work (decoding the stored
facts) slow once, which is what a large view does to every transaction that
decodes rows while it is open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from application.bootstrap import Services, build_services
from application.projections import rebuild as rebuild_module
from application.projections import rows as rows_module
from application.projections.read_model import ViewSettings
from application.projections.rebuild import rebuild_views
from application.projections.rows import OrganizationRow
from domain.catalog import Catalog
from domain.clock import ManualClock
from tests.application.helpers import register
from tests.conftest import empty_postgres_tables

#: Seconds, the smallest timeout the library's setting accepts (0 disables it).
IDLE_TIMEOUT = 1


@pytest.fixture
def services(
    postgres_database: str,
    clock: ManualClock,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Services]:
    empty_postgres_tables(postgres_database)
    monkeypatch.setenv("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", str(IDLE_TIMEOUT))
    built = build_services(
        postgres_database,
        clock=clock,
        catalog=catalog,
        view_settings=ViewSettings(follow_on_read=True, min_position_timeout=2.0),
    )
    yield built
    built.close()


@pytest.fixture
def slow_decoding(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make the next decoding of stored facts outlast the idle timeout."""
    real = rows_module.facts_from_dict
    pending: list[bool] = []

    def decode(data: dict[str, Any]) -> Any:
        if pending:
            pending.clear()
            time.sleep(IDLE_TIMEOUT + 0.5)  # Python's work on a large view, not a wait
        return real(data)

    monkeypatch.setattr(rows_module, "facts_from_dict", decode)
    return lambda: pending.append(True)


@pytest.mark.postgres
def test_comparing_views_never_leaves_a_transaction_idle_while_rows_are_decoded(
    services: Services, slow_decoding: Callable[[], None]
) -> None:
    for n in range(5):
        register(services.app, name=f"Org {n}")
    services.read_model.catch_up()

    slow_decoding()
    report = rebuild_views(services.app, services.read_model.views)

    assert report.consistent, report.differences
    assert report.organizations == 5


@pytest.mark.postgres
def test_swapping_rebuilt_views_in_never_leaves_the_live_transaction_idle(
    services: Services, slow_decoding: Callable[[], None]
) -> None:
    orgs = [register(services.app, name=f"Org {n}") for n in range(5)]
    services.read_model.catch_up()
    views = services.read_model.views
    with views.changes() as changes:  # damage a live row behind the projection's back
        row = changes.row(str(orgs[0]))
        assert row is not None
        changes.put(OrganizationRow(row.organization_id, row.facts, 99, row.position))

    slow_decoding()
    applied = rebuild_views(services.app, services.read_model.views, apply=True)

    assert applied.applied
    assert [d.field for d in applied.differences] == ["access.version"]
    assert services.read_model.access(orgs[0])["version"] == 1
    assert rebuild_views(services.app, services.read_model.views).consistent


def test_the_views_are_compared_page_by_page_in_organization_order(
    store_url: str,
    clock: ManualClock,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild_module, "COMPARE_PAGE_SIZE", 2)
    services = build_services(
        store_url,
        clock=clock,
        catalog=catalog,
        view_settings=ViewSettings(follow_on_read=True, min_position_timeout=2.0),
    )
    try:
        orgs = sorted(str(register(services.app, name=f"Org {n}")) for n in range(7))
        services.read_model.catch_up()
        views = services.read_model.views
        with views.changes() as changes:  # damage the first, a middle and the last row
            for organization_id in (orgs[0], orgs[3], orgs[6]):
                row = changes.row(organization_id)
                assert row is not None
                changes.put(OrganizationRow(row.organization_id, row.facts, 99, row.position))

        report = rebuild_views(services.app, services.read_model.views)

        assert report.organizations == 7
        assert [(d.organization_id, d.field) for d in report.differences] == [
            (organization_id, "access.version") for organization_id in (orgs[0], orgs[3], orgs[6])
        ]
        assert report.live_position == report.rebuilt_position == report.latest_position
    finally:
        services.close()


def test_when_the_live_views_move_on_between_pages_each_page_is_compared_at_their_new_position(
    store_url: str,
    clock: ManualClock,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild_module, "COMPARE_PAGE_SIZE", 2)
    services = build_services(
        store_url,
        clock=clock,
        catalog=catalog,
        view_settings=ViewSettings(follow_on_read=True, min_position_timeout=2.0),
    )
    try:
        orgs = [register(services.app, name=f"Org {n}") for n in range(6)]
        services.read_model.catch_up()
        live = services.read_model.views
        read_page = live.page
        pages_read: list[int] = []

        def page_then_a_follower_applies_a_new_event(after: str | None, limit: int) -> Any:
            page = read_page(after, limit)
            pages_read.append(page.position)
            if len(pages_read) == 1:  # events arrive and a follower applies them mid-compare
                for org in orgs:
                    services.app.start_trial(org, by="u-owner")
                services.read_model.catch_up()
            return page

        monkeypatch.setattr(live, "page", page_then_a_follower_applies_a_new_event)
        report = rebuild_views(services.app, services.read_model.views)

        assert report.consistent, report.differences
        assert report.organizations == 6
        assert pages_read[0] < pages_read[-1] == services.read_model.views.position()
        assert report.live_position == report.rebuilt_position == pages_read[-1]
    finally:
        services.close()
