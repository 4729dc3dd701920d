"""Hostile requests refused at the edge with a JSON error, nothing recorded.

The corpus (tests/acceptance/test_hostile_corpus.py) sends every hostile
value to every field on every store; these tests pin the edge's own rules:
which status, which code, which field is named, and what the limits are.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from application.bootstrap import Services
from interface.app import MAX_BODY_BYTES, create_app
from interface.auth import ALGORITHM, MIN_SECRET_LENGTH, MissingSecretError
from interface.request_guard import MAX_JSON_DEPTH
from tests.interface.conftest import (
    CRM_YEARLY,
    SECRET,
    Caller,
    bearer,
    error_code,
    operator_headers,
    payload,
    user_headers,
)


@pytest.fixture
def store_url() -> str:
    """Not about storage: the in-memory store is enough (the corpus runs on every store)."""
    return "memory://"


def _events(services: Services) -> int:
    return services.app.recorder.max_notification_id() or 0


def test_a_nul_in_an_admin_list_from_an_ordinary_user_is_refused(
    caller: Caller, services: Services
) -> None:
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    before = _events(services)

    answer = caller.as_user(
        org,
        "u-alice",
        "PUT",
        "/services/crm/admins",
        json={"super_admin": "u-alice", "admins": ["u-bob", "x\u0000"]},
    )

    assert answer.status_code == 422
    assert error_code(answer) == "validation_failed"
    assert list(payload(answer)["error"]["details"]["fields"]) == ["admins[1]"]
    assert _events(services) == before


def test_a_lone_surrogate_in_a_name_is_422_not_500(caller: Caller, services: Services) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data='{"name": "Acme \\ud800", "country": "JP", "owner_user_id": "u-owner"}',
        content_type="application/json",
        headers=operator_headers(),
    )

    assert answer.status_code == 422
    assert list(payload(answer)["error"]["details"]["fields"]) == ["name"]
    assert _events(services) == 0


def test_a_hostile_field_name_is_named_escaped(caller: Caller) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data='{"name": "Acme", "country": "JP", "owner_user_id": "u", "a\\u0000b": 1}',
        content_type="application/json",
        headers=operator_headers(),
    )

    assert answer.status_code == 422
    assert list(payload(answer)["error"]["details"]["fields"]) == ["a\\x00b"]


def test_a_control_character_in_a_path_segment_is_named(caller: Caller) -> None:
    org = caller.register()

    answer = caller.client.put(
        f"/v1/organizations/{org}/services/crm%1b/subscription",
        json=CRM_YEARLY,
        headers=operator_headers(),
    )

    assert answer.status_code == 422
    assert list(payload(answer)["error"]["details"]["fields"]) == ["service"]


def test_a_control_character_in_a_query_parameter_is_named(caller: Caller) -> None:
    answer = caller.client.get("/v1/organizations?state=trial%00", headers=operator_headers())

    assert answer.status_code == 422
    assert list(payload(answer)["error"]["details"]["fields"]) == ["query.state"]


def _nested(depth: int) -> str:
    return '{"name": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 30_000])
def test_json_nested_deeper_than_the_limit_is_400(caller: Caller, depth: int) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data=_nested(depth),
        content_type="application/json",
        headers=operator_headers(),
    )

    assert answer.status_code == 400
    assert error_code(answer) == "json_too_deep"
    assert payload(answer)["error"]["details"] == {"max_depth": MAX_JSON_DEPTH}


def test_json_at_the_depth_limit_reaches_the_schema(caller: Caller) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data=_nested(MAX_JSON_DEPTH),
        content_type="application/json",
        headers=operator_headers(),
    )

    assert answer.status_code == 422  # name is not a string: the schema says so


def _chunked_post(caller: Caller, body: bytes) -> object:
    """A body without Content-Length, as a server hands over a chunked one."""
    return caller.client.post(
        "/v1/organizations",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**operator_headers(), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413_not_cut(caller: Caller) -> None:
    body = json.dumps({"name": "Acme", "pad": "x" * MAX_BODY_BYTES}).encode()

    answer = _chunked_post(caller, body)

    assert answer.status_code == 413  # type: ignore[attr-defined]
    assert error_code(answer) == "request_too_large"


def test_a_chunked_body_of_exactly_the_limit_is_read(caller: Caller) -> None:
    head = b'{"name": "Acme", "country": "JP", "owner_user_id": "u-owner"'
    body = head + b" " * (MAX_BODY_BYTES - len(head) - 1) + b"}"
    assert len(body) == MAX_BODY_BYTES

    answer = _chunked_post(caller, body)

    assert answer.status_code == 201  # type: ignore[attr-defined]


def test_a_token_whose_exp_is_a_string_is_refused(caller: Caller) -> None:
    org = caller.register()
    token = jwt.encode(
        {"sub": "u-owner", "org": org, "exp": str(int(time.time()) + 3600)},
        SECRET,
        algorithm=ALGORITHM,
    )

    answer = caller.client.get(f"/v1/organizations/{org}/access", headers=bearer(token))

    assert answer.status_code == 401
    assert error_code(answer) == "invalid_token"


@pytest.mark.parametrize("claim", ["sub", "org"])
def test_a_token_with_a_control_character_in_a_claim_is_refused(caller: Caller, claim: str) -> None:
    org = caller.register()
    claims = {"sub": "u-owner", "org": org, "exp": int(time.time()) + 3600}
    claims[claim] = f"{claims[claim]}\u0000"
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)

    answer = caller.client.get(f"/v1/organizations/{org}/access", headers=bearer(token))

    assert answer.status_code == 401


def test_production_refuses_to_start_with_a_short_secret(tmp_path: Path) -> None:
    with pytest.raises(MissingSecretError, match=f"at least {MIN_SECRET_LENGTH}"):
        create_app({"DATABASE_URL": "memory://", "ENV": "production", "JWT_SECRET": "x" * 31})


def test_production_starts_with_a_secret_of_32_bytes() -> None:
    app = create_app({"DATABASE_URL": "memory://", "ENV": "production", "JWT_SECRET": "x" * 32})

    assert app.config["JWT_SECRET"] == "x" * 32
    app.extensions["suitesub"].close()


def test_suitesub_serve_says_why_it_will_not_start_with_a_short_secret(tmp_path: Path) -> None:
    suitesub = Path(sys.executable).parent / "suitesub"
    finished = subprocess.run(
        [str(suitesub), "serve", "--port", "1"],
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "SUITE_ENV": "production",
            "SUITE_JWT_SECRET": "x",
            "SUITE_DATABASE_URL": f"sqlite:///{tmp_path / 'suite.sqlite3'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode != 0
    assert "SUITE_JWT_SECRET is 1 bytes long" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_user_token_cannot_reach_the_body_checks_of_another_organization(
    caller: Caller,
) -> None:
    mine, theirs = caller.register(), caller.register(name="Other KK")

    answer = caller.client.put(
        f"/v1/organizations/{theirs}/services/crm/admins",
        json={"super_admin": "x\u0000"},
        headers=user_headers(mine, "u-owner"),
    )

    assert answer.status_code == 404
