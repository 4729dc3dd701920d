"""The whole story over real HTTP: gunicorn, 2 workers, one SQLite file."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from interface.auth import mint_token
from tests.conftest import PINNED_START
from tests.interface.conftest import CRM_YEARLY, DESK_MONTHLY, SECRET, UPGRADE_BODY

pytestmark = pytest.mark.slow
START_TIMEOUT_SECONDS = 20
SUITESUB = Path(sys.executable).parent / "suitesub"  # the installed console script


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Http:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None, **headers: str
    ) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, json.loads(answer.read()), dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Http, Path]]:
    database = tmp_path / "suite.sqlite3"
    port = _free_port()
    env = {
        **os.environ,
        "SUITE_DATABASE_URL": f"sqlite:///{database}",
        "SUITE_JWT_SECRET": SECRET,
        "SUITE_VAR_DIR": str(tmp_path / "var"),
        "SUITE_TEST_CLOCK": "1",
        # Pinned: the story gives the same answers on every day it is run.
        "SUITE_TEST_CLOCK_START": PINNED_START,
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(SUITESUB), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    http = Http(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            try:
                if http.call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)  # polling a starting server, not waiting for a projection
        yield http, database
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_the_whole_story_over_http_with_two_workers_on_one_sqlite_file(
    server: tuple[Http, Path],
) -> None:
    http, database = server
    operator = mint_token(SECRET, user_id="ops-1", operator=True)

    status, org_answer, _ = http.call(
        "POST",
        "/v1/organizations",
        operator,
        {"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
    )
    assert status == 201
    org = org_answer["id"]
    alice = mint_token(SECRET, user_id="u-alice", organization_id=org)
    bob = mint_token(SECRET, user_id="u-bob", organization_id=org)
    base = f"/v1/organizations/{org}"
    for service, plan in (("crm", CRM_YEARLY), ("desk", DESK_MONTHLY)):
        status, _, _ = http.call("PUT", f"{base}/services/{service}/subscription", operator, plan)
        assert status == 200

    status, refused, _ = http.call("POST", f"{base}/trial", alice, {})
    assert (status, refused["error"]["code"]) == (403, "trial_initiator_cannot_carry_over")
    status, _, _ = http.call(
        "PUT", f"{base}/services/desk/admins", bob, {"super_admin": "u-alice", "admins": ["u-bob"]}
    )
    assert status == 200
    status, started, _ = http.call("POST", f"{base}/trial", alice, {})
    assert status == 201
    assert started["bundle"]["state"] == "trial"

    status, moved, _ = http.call("POST", "/v1/test-clock", operator, {"advance_days": 30})
    assert status == 200
    with ThreadPoolExecutor(4) as pool:  # every worker reads the same time from the database
        readings = list(
            pool.map(lambda _: http.call("GET", "/v1/test-clock", operator)[1], range(8))
        )
    # The clock started frozen at the pinned instant: every worker reads the same time.
    assert moved["now"] == "2026-12-26T09:00:00+00:00"
    assert {(r["now"], r["frozen"]) for r in readings} == {(moved["now"], True)}
    status, view, _ = http.call("GET", f"{base}/access", alice)
    assert view["bundle"]["state"] == "trial_expired"

    status, extended, _ = http.call("POST", f"{base}/trial/extension", alice, {})
    assert (status, extended["bundle"]["days_left"]) == (200, 15)
    status, quote, _ = http.call("POST", f"{base}/upgrade/quote", alice, UPGRADE_BODY)
    assert status == 200
    purchase = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": quote["total"]}
    status, receipt, _ = http.call("POST", f"{base}/upgrade", alice, purchase, Idempotency_Key="k1")
    assert status == 201
    status, replay, headers = http.call(
        "POST", f"{base}/upgrade", alice, purchase, Idempotency_Key="k1"
    )
    assert (status, replay) == (201, receipt)
    assert headers.get("Idempotent-Replayed") == "true"
    status, view, _ = http.call("GET", f"{base}/access?min_position={receipt['position']}", alice)
    assert view["bundle"]["state"] == "active"
    assert view["position"] >= receipt["position"]

    with sqlite3.connect(database) as connection:
        (charges,) = connection.execute("SELECT COUNT(*) FROM sandbox_charges").fetchone()
    assert charges == 1


def test_two_workers_share_one_sqlite_file_under_concurrent_writes(
    server: tuple[Http, Path],
) -> None:
    http, database = server
    operator = mint_token(SECRET, user_id="ops-1", operator=True)

    def register(index: int) -> int:
        body = {"name": f"Org {index}", "country": "JP", "owner_user_id": f"u-{index}"}
        return http.call("POST", "/v1/organizations", operator, body)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(register, range(24)))
    assert statuses == [201] * 24

    org = http.call(
        "POST",
        "/v1/organizations",
        operator,
        {"name": "Race", "country": "JP", "owner_user_id": "u"},
    )[1]["id"]
    base = f"/v1/organizations/{org}"
    owner = mint_token(SECRET, user_id="u", organization_id=org)
    total = http.call("POST", f"{base}/upgrade/quote", owner, UPGRADE_BODY)[1]["total"]
    purchase = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": total}

    def buy(key: str) -> int:
        return http.call("POST", f"{base}/upgrade", owner, purchase, Idempotency_Key=key)[0]

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(buy, ["a", "b", "c", "d"]))
    assert outcomes == [201, 409, 409, 409]
    with sqlite3.connect(database) as connection:
        (charges,) = connection.execute("SELECT COUNT(*) FROM sandbox_charges").fetchone()
    assert charges == 1
