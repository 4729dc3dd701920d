"""The access view's one-statement read, on every store.

One read answers the row and the positions that say whether it is current;
decoded facts are reused only for the very text they came from, so a row
changed behind the projection's back (a repair by ``audit rebuild --apply``)
is served as stored, at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.bootstrap import Services, build_services
from application.projections.read_model import ViewSettings
from application.projections.rebuild import rebuild_views
from application.projections.rows import OrganizationRow
from domain.catalog import Catalog
from domain.clock import ManualClock
from tests.application.helpers import register

API_FOLLOWS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=API_FOLLOWS)
    yield built
    built.close()


def test_each_sql_store_reads_the_access_row_with_its_positions_in_one_statement(
    services: Services, store_url: str
) -> None:
    org = register(services.app)
    one_statement = services.read_model.views.read_access(str(org))
    if store_url.startswith("memory"):
        assert one_statement is None  # the reader reads the three in a safe order instead
    else:
        assert one_statement is not None
        assert (one_statement.row, one_statement.latest, one_statement.tracked) == (None, 1, 0)


def test_one_read_answers_the_row_the_log_end_and_the_views_position(
    services: Services,
) -> None:
    org = register(services.app)
    started = services.app.start_trial(org, by="u-owner")
    reader = services.read_model.access_reader

    behind = reader.read(str(org))
    assert (behind.row, behind.latest, behind.tracked) == (None, started.position, 0)

    services.read_model.catch_up()
    current = reader.read(str(org))
    assert current.row is not None
    assert (current.row.version, current.row.position) == (2, started.position)
    assert (current.latest, current.tracked) == (started.position, started.position)
    assert current.row.facts.bundle_state == "trial"

    assert services.read_model.views.access_row(str(org)) == current.row

    unknown = reader.read("00000000-0000-4000-8000-000000000000")
    assert (unknown.row, unknown.latest, unknown.tracked) == (
        None,
        started.position,
        started.position,
    )
    assert services.read_model.views.access_row("00000000-0000-4000-8000-000000000000") is None


def test_a_read_behind_the_log_applies_it_first(services: Services) -> None:
    org = register(services.app)
    assert services.read_model.access(org)["bundle"]["state"] == "none"
    services.app.start_trial(org, by="u-owner")  # not applied to the views yet
    view = services.read_model.access(org)
    assert (view["version"], view["bundle"]["state"]) == (2, "trial")


def test_a_row_changed_at_the_same_version_is_served_as_stored_never_from_memory(
    services: Services,
) -> None:
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    assert services.read_model.access(org)["bundle"]["state"] == "trial"  # decoded, remembered

    views = services.read_model.views
    with views.changes() as changes:  # damage the row, same version, behind the projection
        row = changes.row(str(org))
        assert row is not None
        damaged = row.facts.updated(bundle_state="none", trial=None)
        changes.put(OrganizationRow(row.organization_id, damaged, row.version, row.position))
    assert services.read_model.access(org)["bundle"]["state"] == "none"

    assert rebuild_views(
        services.app, services.read_model.views, apply=True
    ).applied  # the repair, same version again
    view = services.read_model.access(org)
    assert (view["version"], view["bundle"]["state"]) == (2, "trial")
