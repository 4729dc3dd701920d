"""A card number sent through every channel leaves no trace in a real deployment.

``suitesub serve`` (gunicorn, its access and error logs) on SQLite, and on
PostgreSQL with ``suitesub worker``: every request of ``tests/card_attacks.py``
(each channel × each spelling), a few requests gunicorn cannot even parse,
and a real purchase; then the database files (SQLite and its -wal) or a
``pg_dump``, and every log, are searched for the card number's digits under
any separators and escapes.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.card_attacks import PLAN, UPGRADE, attacks, expected_status
from tests.card_spellings import CARD_NUMBER, holds_card_number
from tests.conftest import fresh_postgres_database
from tests.processes.deployment import OPERATOR, Deployment, user

SPACED = " ".join(CARD_NUMBER[i : i + 4] for i in range(0, 16, 4))
TABBED = SPACED.replace(" ", "\t")
#: Requests gunicorn refuses before the app sees them: it logs them itself.
UNPARSABLE = [
    f"GET /v1/{SPACED} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    f"GET /v1/{TABBED} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    f"GET /healthz HTTP/1.1\r\nHost: x\r\nX {SPACED}: 1\r\n\r\n".encode(),
    f"GET /healthz?{SPACED} HTTP/9.9\r\nHost: x\r\n\r\n".encode(),
]

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    logs = tmp_path / "var"
    logs.mkdir()
    database = (
        fresh_postgres_database("pan")
        if request.param == "postgres"
        else nullcontext(f"sqlite:///{tmp_path / 'suite.sqlite3'}")
    )
    with database as url:
        running = Deployment(url, logs)
        try:
            running.start_serve()
            if request.param == "postgres":
                running.start_worker()
            yield running
        finally:
            running.stop()


def _send_raw(deployment: Deployment, request: bytes) -> None:
    host, port = deployment.base.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        while connection.recv(65536):
            pass


def _everything_written(deployment: Deployment, tmp_path: Path) -> dict[str, bytes]:
    written = {
        str(path.relative_to(tmp_path)): path.read_bytes()
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    if deployment.database_url.startswith("postgresql"):
        dump = subprocess.run(
            ["pg_dump", "--no-owner", deployment.database_url],
            capture_output=True,
            check=True,
            timeout=120,
        )
        written["pg_dump"] = dump.stdout
    return written


def test_a_card_number_sent_through_every_channel_is_in_no_file_dump_or_log(
    deployment: Deployment, tmp_path: Path
) -> None:
    status, organization, _ = deployment.call(
        "POST",
        "/v1/organizations",
        token=OPERATOR,
        body={"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
    )
    assert status == 201, organization
    org = organization["id"]
    path = f"/v1/organizations/{org}"
    assert (
        deployment.call("PUT", f"{path}/services/crm/subscription", token=OPERATOR, body=PLAN)[0]
        == 200
    )
    alice = user(org)
    status, quote, _ = deployment.call("POST", f"{path}/upgrade/quote", token=alice, body=UPGRADE)
    assert status == 200, quote
    if deployment.workers:  # the reads among the attacks answer from caught-up views
        deployment.wait_until_views_caught_up()

    wrong: list[str] = []
    for attack in attacks(org, quote["total"]):
        token = (
            None if "Authorization" in attack.headers else OPERATOR if attack.as_operator else alice
        )
        status, answer, headers = deployment.call(
            attack.method, attack.path, token=token, body=attack.body, headers=attack.headers
        )
        if status != expected_status(attack) or holds_card_number(repr((answer, headers)).encode()):
            wrong.append(f"{attack.name}: {status}")
    for request in UNPARSABLE:
        _send_raw(deployment, request)
    bought = deployment.call(
        "POST",
        f"{path}/upgrade",
        token=alice,
        body={**UPGRADE, "payment_token": "tok_visa", "expected_total": quote["total"]},
        headers={"Idempotency-Key": "k-real"},
    )
    assert bought[0] == 201, bought
    # The views have applied every event (the worker on PostgreSQL, the API on SQLite).
    if deployment.workers:
        deployment.wait_until_views_caught_up()
    after_purchase = f"{path}/access?min_position={bought[1]['position']}"
    assert deployment.call("GET", after_purchase, token=alice)[0] == 200
    deployment.stop()

    assert wrong == []
    written = _everything_written(deployment, tmp_path)
    assert "var/api.log" in written
    assert b"/access" in written["var/api.log"]  # the access log was written
    assert any(name.endswith(".sqlite3") or name == "pg_dump" for name in written)
    assert [name for name, content in written.items() if holds_card_number(content)] == []
