"""Signing in to the console with an OpenID Connect provider (SPEC §13), against a
small fake provider on 127.0.0.1 (discovery, JWKS, authorization and token endpoints)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from application.bootstrap import Services
from interface.app import create_app
from interface.cli import main
from interface.console.oidc import OidcConfigurationError, OidcSettings, s256_challenge
from tests.console.conftest import SECRET
from tests.console.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider, fake_oidc_provider
from tests.console.story import CRM_SUPER_ADMIN, csrf_of

ENGLISH = {"Accept-Language": "en"}
OPERATORS = "suitesub-operators"


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def provider() -> Iterator[FakeOidcProvider]:
    with fake_oidc_provider() as running:
        yield running


def settings_for(provider: FakeOidcProvider, **overrides: Any) -> OidcSettings:
    return OidcSettings(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        operator_group=OPERATORS,
        display_name="Acme ID",
        **overrides,
    )


@pytest.fixture
def production(services: Services, provider: FakeOidcProvider) -> Flask:
    return create_app(
        {
            "SERVICES": services,
            "JWT_SECRET": SECRET,
            "ENV": "production",
            "OIDC": settings_for(provider),
        }
    )


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def local(url: str) -> str:
    """The path and query of a URL of this console (the test client's host)."""
    parsed = urllib.parse.urlsplit(url)
    assert parsed.netloc in ("", "localhost"), url
    return f"{parsed.path}?{parsed.query}" if parsed.query else parsed.path


def through_the_provider(client: FlaskClient, provider: FakeOidcProvider, start: str) -> Any:
    """Start at the console, sign in at the provider, come back: the callback's answer."""
    begun = client.get(start)
    assert begun.status_code == 302, text(begun)
    back = provider.sign_in_through(begun.location)
    return client.get(local(back), headers=ENGLISH)


def test_a_user_signs_in_with_the_provider_using_pkce_and_lands_in_their_organization(
    production: Flask, provider: FakeOidcProvider, organization: UUID
) -> None:
    client = production.test_client()
    page = text(client.get("/console/sign-in", headers=ENGLISH))
    assert "Sign in with Acme ID" in page
    assert 'href="/console/sign-in/oidc"' in page
    assert "Paste your token" in page  # the other production sign-in stays
    assert client.get(f"/console/sign-in/{organization}").status_code == 404  # no dev sign-in

    provider.user = {"sub": CRM_SUPER_ADMIN, "org": str(organization)}
    begun = client.get("/console/sign-in/oidc")
    assert begun.status_code == 302
    assert begun.location.startswith(f"{provider.issuer}/authorize?")
    asked = query_of(begun.location)
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT_ID
    assert "openid" in asked["scope"].split()
    assert asked["redirect_uri"] == "http://localhost/console/sign-in/oidc/callback"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 32
    assert len(asked["nonce"]) >= 32

    back = provider.sign_in_through(begun.location)
    answer = client.get(local(back))
    assert answer.status_code == 302, text(answer)
    assert answer.location == f"/console/orgs/{organization}/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("suitesub_console=")
    for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/console"):
        assert flag in cookie

    # The token request proved the verifier behind the challenge, with the client's secret.
    [(form, headers)] = provider.token_requests
    assert s256_challenge(form["code_verifier"]) == asked["code_challenge"]
    assert 43 <= len(form["code_verifier"]) <= 128
    assert form["redirect_uri"] == asked["redirect_uri"]
    assert headers["authorization"].startswith("Basic ")
    assert "client_secret" not in form

    home = client.get(answer.location, headers=ENGLISH)
    assert home.status_code == 200
    assert CRM_SUPER_ADMIN in text(home)
    assert "Acme KK" in text(home)


def test_each_sign_in_has_its_own_state_nonce_and_verifier(
    production: Flask, provider: FakeOidcProvider
) -> None:
    client = production.test_client()
    first = query_of(client.get("/console/sign-in/oidc").location)
    second = query_of(client.get("/console/sign-in/oidc").location)
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_an_operator_group_signs_in_to_support_and_next_is_followed(
    production: Flask, provider: FakeOidcProvider, organization: UUID
) -> None:
    client = production.test_client()
    provider.user = {"sub": "ops-hanako", "groups": ["staff", OPERATORS]}
    wanted = f"/console/support/orgs/{organization}"
    answer = through_the_provider(
        client, provider, f"/console/sign-in/oidc?next={urllib.parse.quote(wanted)}"
    )
    assert answer.status_code == 302
    assert answer.location == wanted
    assert client.get(wanted).status_code == 200


def test_a_next_outside_the_console_is_not_followed(
    production: Flask, provider: FakeOidcProvider
) -> None:
    client = production.test_client()
    provider.user = {"sub": "ops-hanako", "groups": OPERATORS}  # a space-separated string too
    answer = through_the_provider(client, provider, "/console/sign-in/oidc?next=//evil.example/")
    assert answer.location == "/console/support/"


@pytest.mark.parametrize(
    ("misbehaviour", "value", "status", "says"),
    [
        ("nonce", "someone-elses-nonce", 401, "could not be verified"),
        ("lifetime", -3600, 401, "could not be verified"),
        ("unpublished_key", True, 401, "could not be verified"),
        ("audience", "another-client", 401, "could not be verified"),
        ("discovery_issuer", "https://impostor.example", 502, "did not answer as expected"),
        ("challenge_methods", ["plain"], 502, "did not answer as expected"),
    ],
)
def test_an_id_token_or_provider_that_does_not_verify_signs_nobody_in(
    production: Flask,
    provider: FakeOidcProvider,
    organization: UUID,
    misbehaviour: str,
    value: Any,
    status: int,
    says: str,
) -> None:
    client = production.test_client()
    provider.user = {"sub": CRM_SUPER_ADMIN, "org": str(organization)}
    setattr(provider.misbehave, misbehaviour, value)
    begun = client.get("/console/sign-in/oidc", headers=ENGLISH)
    if begun.status_code == 302:
        answer = client.get(local(provider.sign_in_through(begun.location)), headers=ENGLISH)
    else:
        answer = begun  # the discovery document itself was refused
    assert answer.status_code == status, text(answer)
    assert says in text(answer)
    assert client.get(f"/console/orgs/{organization}/").status_code == 302  # still signed out


def test_a_forged_state_or_a_replayed_callback_is_refused(
    production: Flask, provider: FakeOidcProvider, organization: UUID
) -> None:
    client = production.test_client()
    provider.user = {"sub": CRM_SUPER_ADMIN, "org": str(organization)}
    begun = client.get("/console/sign-in/oidc")
    back = provider.sign_in_through(begun.location)
    forged = back.replace(f"state={query_of(back)['state']}", "state=forged")
    refused = client.get(local(forged), headers=ENGLISH)
    assert refused.status_code == 401
    assert provider.token_requests == []  # refused before the code was spent
    # The pending sign-in is used up by any callback: the genuine one comes too late.
    late = client.get(local(back), headers=ENGLISH)
    assert late.status_code == 400
    assert "start it again" in text(late)
    assert client.get(f"/console/orgs/{organization}/").status_code == 302


def test_a_provider_that_refuses_the_user_is_said_so(
    production: Flask, provider: FakeOidcProvider
) -> None:
    client = production.test_client()
    begun = client.get("/console/sign-in/oidc")
    state = query_of(begun.location)["state"]
    answer = client.get(
        f"/console/sign-in/oidc/callback?error=access_denied&state={state}", headers=ENGLISH
    )
    assert answer.status_code == 401
    assert "did not sign you in" in text(answer)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": CRM_SUPER_ADMIN},
        {"sub": CRM_SUPER_ADMIN, "org": "00000000-0000-4000-8000-000000000000"},
        {"sub": CRM_SUPER_ADMIN, "org": "acme"},
        {"sub": "ops-hanako", "groups": ["staff"]},
    ],
)
def test_an_identity_naming_no_organization_of_the_service_is_refused(
    production: Flask, provider: FakeOidcProvider, claims: dict[str, Any]
) -> None:
    client = production.test_client()
    provider.user = claims
    answer = through_the_provider(client, provider, "/console/sign-in/oidc")
    assert answer.status_code == 403
    assert "names no organization of this service" in text(answer)
    assert client.get("/console/support/").status_code == 302  # signed out


def test_without_a_provider_there_is_no_oidc_sign_in(services: Services) -> None:
    app = create_app({"SERVICES": services, "JWT_SECRET": SECRET, "ENV": "production"})
    client = app.test_client()
    assert "Sign in with" not in text(client.get("/console/sign-in", headers=ENGLISH))
    assert client.get("/console/sign-in/oidc").status_code == 404
    assert client.get("/console/sign-in/oidc/callback?code=x&state=y").status_code == 404


def test_the_pasted_token_still_signs_in_beside_the_provider(
    production: Flask, organization: UUID
) -> None:
    from interface.auth import mint_token

    client = production.test_client()
    page = text(client.get("/console/sign-in"))
    token = mint_token(SECRET, user_id=CRM_SUPER_ADMIN, organization_id=str(organization))
    answer = client.post("/console/sign-in", data={"csrf_token": csrf_of(page), "token": token})
    assert answer.location == f"/console/orgs/{organization}/"


def test_the_settings_come_from_the_environment_and_refuse_what_cannot_work() -> None:
    assert OidcSettings.from_env({}) is None
    found = OidcSettings.from_env(
        {
            "SUITE_OIDC_ISSUER": "https://id.acme.example",
            "SUITE_OIDC_CLIENT_ID": "console",
            "SUITE_OIDC_CLIENT_SECRET": "s3cret",
            "SUITE_OIDC_OPERATOR_GROUP": "ops",
            "SUITE_OIDC_SESSION_SECONDS": "3600",
        }
    )
    assert found is not None
    assert (found.client_secret, found.operator_group, found.session_seconds) == (
        "s3cret",
        "ops",
        3600,
    )
    assert (found.user_claim, found.organization_claim, found.operator_claim) == (
        "sub",
        "org",
        "groups",
    )
    refused = [
        {"SUITE_OIDC_ISSUER": "https://id.acme.example"},  # no client id
        {"SUITE_OIDC_ISSUER": "http://id.acme.example", "SUITE_OIDC_CLIENT_ID": "c"},
        {
            "SUITE_OIDC_ISSUER": "https://id.acme.example",
            "SUITE_OIDC_CLIENT_ID": "c",
            "SUITE_OIDC_SCOPES": "profile email",
        },
        {
            "SUITE_OIDC_ISSUER": "https://id.acme.example",
            "SUITE_OIDC_CLIENT_ID": "c",
            "SUITE_OIDC_SESSION_SECONDS": "soon",
        },
    ]
    for env in refused:
        with pytest.raises(OidcConfigurationError):
            OidcSettings.from_env(env)


def test_create_app_reads_the_provider_from_the_environment(
    services: Services, provider: FakeOidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITE_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("SUITE_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SUITE_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SUITE_OIDC_NAME", "Acme ID")
    app = create_app({"SERVICES": services, "JWT_SECRET": SECRET, "ENV": "production"})
    assert "Sign in with Acme ID" in text(app.test_client().get("/console/sign-in"))


@pytest.mark.parametrize(
    ("language", "button", "refused"),
    [
        ("en", "Sign in with Acme ID", "nobody was signed in"),
        ("ja", "Acme ID でサインイン", "サインインしていません"),
    ],
)
def test_the_provider_sign_in_reads_in_both_languages(
    production: Flask, provider: FakeOidcProvider, language: str, button: str, refused: str
) -> None:
    client = production.test_client()
    client.set_cookie("console_lang", language, path="/console")
    assert button in text(client.get("/console/sign-in"))
    provider.misbehave.unpublished_key = True
    provider.user = {"sub": "ops-hanako", "groups": [OPERATORS]}
    begun = client.get("/console/sign-in/oidc")
    answer = client.get(local(provider.sign_in_through(begun.location)))
    assert answer.status_code == 401
    assert refused in text(answer)


def test_suitesub_serve_refuses_oidc_settings_that_cannot_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITE_DATABASE_URL", f"sqlite:///{tmp_path / 'suite.sqlite3'}")
    monkeypatch.setenv("SUITE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SUITE_OIDC_ISSUER", "http://id.acme.example")
    monkeypatch.setenv("SUITE_OIDC_CLIENT_ID", "console")
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "SUITE_OIDC_ISSUER must be an https:// URL" in result.output
    assert "Traceback" not in result.output
