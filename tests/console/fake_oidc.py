"""A small OpenID Connect provider on 127.0.0.1 for the console's sign-in tests.

It serves discovery, JWKS, an authorization endpoint that signs in whoever the
test chose (answering with a redirect carrying ``code`` and ``state``, as a
provider does after its own login page) and a token endpoint that checks the
client's secret, the redirect URI and the PKCE verifier against the challenge
before it answers an RS256 ID token. Tests can make it misbehave (another
issuer, a wrong nonce, an expired token, a key it does not publish).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "suitesub-console"
CLIENT_SECRET = "console-client-secret"
KEY_ID = "test-key-1"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Grant:
    claims: dict[str, Any]
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    client_id: str


@dataclass
class Misbehaviour:
    #: The issuer the discovery document names (None: the real one).
    discovery_issuer: str | None = None
    #: Put this nonce in the ID token instead of the one asked for.
    nonce: str | None = None
    #: Seconds the ID token is valid (negative: already expired).
    lifetime: int = 300
    #: Sign with a key that JWKS does not publish.
    unpublished_key: bool = False
    #: The ID token's audience (None: the client id).
    audience: str | None = None
    #: Offer only these PKCE methods in discovery (None: ["S256"]).
    challenge_methods: list[str] | None = None


@dataclass
class FakeOidcProvider:
    server: ThreadingHTTPServer
    #: The claims the next sign-in gets (``sub``, ``org``, ``groups``…).
    user: dict[str, Any] = field(default_factory=dict)
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    grants: dict[str, Grant] = field(default_factory=dict)
    #: Every request to the token endpoint: its form and headers.
    token_requests: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    other_key: rsa.RSAPrivateKey = field(default_factory=_new_key)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.misbehave.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": self.misbehave.challenge_methods or ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        """The user (``self.user``) signs in and is sent back with a code."""
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            claims=dict(self.user),
            redirect_uri=query.get("redirect_uri", ""),
            code_challenge=query.get("code_challenge", ""),
            code_challenge_method=query.get("code_challenge_method", ""),
            nonce=query.get("nonce"),
            client_id=query.get("client_id", ""),
        )
        back = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": f"{query.get('redirect_uri', '')}?{back}"}

    def token(self, form: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append((form, headers))
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"error": "invalid_client"}
        grant = self.grants.pop(form.get("code", ""), None)  # a code is used once
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant.redirect_uri or grant.client_id != CLIENT_ID:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if grant.code_challenge_method != "S256" or challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.misbehave.audience or CLIENT_ID,
            "iat": now,
            "exp": now + self.misbehave.lifetime,
            "nonce": self.misbehave.nonce or grant.nonce,
            **grant.claims,
        }
        key = self.other_key if self.misbehave.unpublished_key else self.key
        id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID})
        return 200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "id_token": id_token,
            "expires_in": 300,
        }

    def sign_in_through(self, authorization_url: str) -> str:
        """What a browser does at the provider: GET its authorization URL and take the
        redirect back (the console's callback URL with ``code`` and ``state``)."""
        parsed = urllib.parse.urlsplit(authorization_url)
        assert parsed.netloc == urllib.parse.urlsplit(self.issuer).netloc, authorization_url
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(authorization_url, timeout=10)
        except urllib.error.HTTPError as answer:  # a 3xx not followed surfaces as this
            status, location = answer.code, answer.headers["Location"]
        else:
            status, location = 200, None
        if status != 302 or location is None:
            raise AssertionError(f"the provider answered {status}, not a redirect back")
        return str(location)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _handler(provider: FakeOidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            if parsed.path == "/.well-known/openid-configuration":
                self._answer(200, provider.discovery())
            elif parsed.path == "/jwks":
                self._answer(200, provider.jwks())
            elif parsed.path == "/authorize":
                status, headers = provider.authorize(dict(urllib.parse.parse_qsl(parsed.query)))
                self._answer(status, None, headers)
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if urllib.parse.urlsplit(self.path).path != "/token":
                self._answer(404, {"error": "not_found"})
                return
            length = int(self.headers.get("content-length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = provider.token(form, headers)
            self._answer(status, body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def fake_oidc_provider() -> Iterator[FakeOidcProvider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    provider = FakeOidcProvider(server=server)
    server.RequestHandlerClass = _handler(provider)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
