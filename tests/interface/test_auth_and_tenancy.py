"""Who may call what: bearer tokens, tenant isolation, operator-only routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services
from interface.app import create_app
from interface.auth import MissingSecretError, development_secret, mint_token
from tests.interface.conftest import SECRET, Caller, bearer, error_code, user_headers

ORG_ROUTES = [
    ("GET", "/access", None),
    ("GET", "/events", None),
    ("GET", "/trial/eligibility", None),
    ("POST", "/trial", {}),
    ("POST", "/trial/extension", {}),
    ("POST", "/trial/cancellation", {}),
    (
        "POST",
        "/upgrade/quote",
        {
            "billing_period": "monthly",
            "seats": 5,
            "add_ons": [],
            "billing_contact": {"company_name": "X", "country": "JP", "email": "x@example.com"},
        },
    ),
    ("PUT", "/services/crm/admins", {"super_admin": "u-x", "admins": []}),
    ("POST", "/upgrade", {"payment_token": "tok_visa"}),
    (
        "PUT",
        "/services/crm/subscription",
        {
            "seats": 1,
            "billing_period": "monthly",
            "amount_paid": 1,
            "period_start": "2026-01-01",
            "period_end": "2026-02-01",
            "super_admin": "u-x",
        },
    ),
]


@pytest.fixture
def store_url() -> str:
    """Not about storage: the in-memory store is enough (the stories run on every store)."""
    return "memory://"


@pytest.mark.parametrize(("method", "path", "body"), ORG_ROUTES)
def test_a_user_of_another_organization_sees_nothing(
    caller: Caller, method: str, path: str, body: object
) -> None:
    victim = caller.acme_with_crm_and_desk()
    intruder_org = caller.register(name="Intruder")

    answer = caller.client.open(
        f"/v1/organizations/{victim}{path}",
        method=method,
        json=body,
        headers={**user_headers(intruder_org, "u-alice"), "Idempotency-Key": "k"},
    )

    assert answer.status_code == 404
    assert error_code(answer) == "organization_not_found"
    assert "u-alice" not in answer.get_data(as_text=True)


def test_the_organization_claim_matches_whatever_the_uuid_spelling(caller: Caller) -> None:
    org = caller.register()

    answer = caller.client.get(
        f"/v1/organizations/{org}/access", headers=user_headers(org.upper(), "u-owner")
    )

    assert answer.status_code == 200


def test_users_may_not_use_operator_routes(caller: Caller) -> None:
    org = caller.register()

    registered = caller.client.post(
        "/v1/organizations",
        json={"name": "Other", "country": "JP", "owner_user_id": "u"},
        headers=user_headers(org, "u-owner"),
    )
    subscription = caller.client.put(
        f"/v1/organizations/{org}/services/crm/subscription",
        json={
            "seats": 1,
            "billing_period": "monthly",
            "amount_paid": 1,
            "period_start": "2026-01-01",
            "period_end": "2026-02-01",
            "super_admin": "u",
        },
        headers=user_headers(org, "u-owner"),
    )
    clock = caller.client.get("/v1/test-clock", headers=user_headers(org, "u-owner"))

    assert [registered.status_code, subscription.status_code, clock.status_code] == [403] * 3
    assert {error_code(a) for a in (registered, subscription, clock)} == {"operator_only"}


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    # A day ahead: the tokens are built when the module is collected, and a whole
    # suite on a loaded machine takes longer than minutes to reach these tests.
    claims: dict[str, object] = {"sub": "u-alice", "org": "x", "iat": now, "exp": now + 86400}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("name", "headers", "code"),
    [
        ("missing", {}, "authentication_required"),
        ("not bearer", {"Authorization": "Basic dTpw"}, "authentication_required"),
        ("garbage", bearer("not.a.jwt"), "invalid_token"),
        (
            "expired",
            bearer(jwt.encode(_claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256")),
            "token_expired",
        ),
        (
            "forged",
            bearer(jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256")),
            "invalid_token",
        ),
        ("alg none", bearer(jwt.encode(_claims(), "", algorithm="none")), "invalid_token"),
        (
            "HS512",
            bearer(jwt.encode(_claims(), SECRET * 2, algorithm="HS512")),
            "invalid_token",
        ),
        (
            "no exp",
            bearer(jwt.encode(_claims(exp=None), SECRET, algorithm="HS256")),
            "invalid_token",
        ),
        (
            "no org nor operator scope",
            bearer(jwt.encode(_claims(org=None), SECRET, algorithm="HS256")),
            "invalid_token",
        ),
    ],
)
def test_requests_without_a_valid_token_are_401(
    client: FlaskClient, name: str, headers: dict[str, str], code: str
) -> None:
    answer = client.get(
        "/v1/organizations/00000000-0000-0000-0000-000000000001/access", headers=headers
    )

    assert answer.status_code == 401, name
    assert error_code(answer) == code
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_a_few_seconds_past_its_expiry_is_still_accepted(caller: Caller) -> None:
    org = caller.register()
    token = mint_token(
        SECRET,
        user_id="u-owner",
        organization_id=org,
        ttl_seconds=60,
        issued_at=time.time() - 70,
    )

    answer = caller.client.get(f"/v1/organizations/{org}/access", headers=bearer(token))

    assert answer.status_code == 200


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(MissingSecretError, match="SUITE_JWT_SECRET"):
        create_app({"DATABASE_URL": "memory://", "ENV": "production", "VAR_DIR": tmp_path})


def test_the_development_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = development_secret(tmp_path / "var")
    second = development_secret(tmp_path / "var")

    assert first == second
    assert len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "var" / "jwt-dev-secret").st_mode)
    assert mode == 0o600
    assert list((tmp_path / "var").iterdir()) == [tmp_path / "var" / "jwt-dev-secret"]


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def test_rs256_tokens_are_verified_with_the_configured_public_key(
    services: Services, rsa_keys: tuple[str, str]
) -> None:
    private_pem, public_pem = rsa_keys
    api = create_app({"SERVICES": services, "JWT_SECRET": SECRET, "JWT_PUBLIC_KEY": public_pem})
    operator = jwt.encode(
        {"sub": "idp-ops", "scope": "operator", "exp": int(time.time()) + 600},
        private_pem,
        algorithm="RS256",
    )
    # The classic confusion attack: HS256 "signed" with the public key as its secret.
    forged = _hs256_by_hand(
        {"sub": "x", "scope": "operator", "exp": int(time.time()) + 600}, public_pem.encode()
    )
    client = api.test_client()

    accepted = client.get("/v1/test-clock", headers=bearer(operator))

    assert accepted.status_code == 200
    refused = client.get("/v1/test-clock", headers=bearer(forged))
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_token"


def _hs256_by_hand(claims: dict[str, object], key: bytes) -> str:
    """PyJWT refuses to HMAC with a PEM key, so an attacker would do it by hand."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + part(json.dumps(claims).encode())
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def test_rs256_tokens_are_refused_without_a_public_key(
    client: FlaskClient, rsa_keys: tuple[str, str]
) -> None:
    private_pem, _ = rsa_keys
    token = jwt.encode(
        {"sub": "idp-ops", "scope": "operator", "exp": int(time.time()) + 600},
        private_pem,
        algorithm="RS256",
    )

    answer = client.get("/v1/test-clock", headers=bearer(token))

    assert answer.status_code == 401
    assert error_code(answer) == "invalid_token"


def test_a_user_is_refused_an_operator_route_before_its_body_is_read(caller: Caller) -> None:
    org = caller.register()

    answer = caller.client.post(
        "/v1/organizations", json={"nonsense": True}, headers=user_headers(org, "u-owner")
    )

    assert answer.status_code == 403
    assert error_code(answer) == "operator_only"
