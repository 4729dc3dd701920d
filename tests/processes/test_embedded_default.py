"""The embedded default: gunicorn ``-w 4`` on one SQLite file and no other process.

Every API worker keeps the views current by itself (it applies what the log
has before reading), so a write answered by one worker is read back, with
``min_position``, from any other; concurrent appliers apply each event once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from application.bootstrap import build_services
from application.projections.rebuild import rebuild_views
from tests.processes.deployment import OPERATOR, Deployment, at_once, user

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Deployment]:
    running = Deployment(f"sqlite:///{tmp_path}/suite.sqlite3", tmp_path)
    try:
        running.start_api(workers=4)
        yield running
    finally:
        running.stop()


def test_every_api_worker_reads_every_workers_writes(embedded: Deployment) -> None:
    def register_start_and_read(index: int) -> tuple[int, str]:
        status, created, _ = embedded.call(
            "POST",
            "/v1/organizations",
            token=OPERATOR,
            body={"name": f"Org {index}", "country": "JP", "owner_user_id": "u-owner"},
        )
        assert status == 201, created
        org = created["id"]
        status, started, _ = embedded.call(
            "POST", f"/v1/organizations/{org}/trial", token=user(org, "u-owner"), body={}
        )
        assert status == 201, started
        status, view, _ = embedded.call(
            "GET",
            f"/v1/organizations/{org}/access?min_position={started['position']}",
            token=user(org, "u-owner"),
        )
        assert status == 200, view
        return view["version"], view["bundle"]["state"]

    answers = at_once(12, register_start_and_read)
    assert answers == [(2, "trial")] * 12

    status, page, _ = embedded.call("GET", "/v1/organizations?limit=100", token=OPERATOR)
    assert status == 200, page
    assert len(page["organizations"]) == 12
    services = build_services(embedded.database_url)
    try:
        report = rebuild_views(services.app, services.read_model.views)
        assert report.consistent, report.differences[:5]
        assert report.organizations == 12
    finally:
        services.close()
