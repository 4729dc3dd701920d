"""Signing in to the console with an OpenID Connect provider (SPEC §13).

The authorization code flow with PKCE (RFC 7636, ``S256``), a ``state`` and a
``nonce``, against the provider named by ``SUITE_OIDC_ISSUER``:

1. ``/console/sign-in/oidc`` keeps a fresh ``state``, ``nonce`` and PKCE
   ``code_verifier`` in the session and sends the browser to the provider's
   ``authorization_endpoint`` (from its discovery document, whose ``issuer``
   must be the configured one).
2. The provider sends it back to ``/console/sign-in/oidc/callback`` with a
   ``code``; the ``state`` must be the session's. The code is exchanged at the
   ``token_endpoint`` with the verifier (and the client secret, when one is
   configured: HTTP Basic, or the form when the provider only takes that).
3. The ID token is verified with PyJWT: its signature with the provider's key
   from ``jwks_uri`` (``PyJWKClient``; asymmetric algorithms only, never
   ``none`` or an HMAC), ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat``, and
   the ``nonce`` of this sign-in.
4. Its claims name the principal (:func:`principal_claims`): the user is the
   ``sub`` claim (or ``SUITE_OIDC_USER_CLAIM``); an operator when the
   ``groups`` claim (``SUITE_OIDC_OPERATOR_CLAIM``) holds
   ``SUITE_OIDC_OPERATOR_GROUP``; otherwise the organization is the ``org``
   claim (``SUITE_OIDC_ORGANIZATION_CLAIM``), which must name a registered
   organization. The console then keeps a service token for that principal
   (``interface.auth.mint_token``), as the other sign-ins do.

Nothing here does cryptography itself: PyJWT verifies, ``secrets`` and
``hashlib`` make the random values and the S256 challenge.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from domain.text import text_problem

HTTP_TIMEOUT_SECONDS = 10
METADATA_LIFESPAN_SECONDS = 3600
LEEWAY_SECONDS = 30
DEFAULT_SCOPES = "openid profile email"
DEFAULT_SESSION_SECONDS = 8 * 3600
#: Signature algorithms an ID token may use: asymmetric only (the client secret
#: is never a verification key, and ``none`` is never accepted).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
LOOPBACK_HOSTS = frozenset({"localhost"})
#: Where the app keeps its :class:`OidcProvider` (``app.extensions``).
OIDC_EXTENSION = "suitesub_console_oidc"


class OidcConfigurationError(ValueError):
    """``SUITE_OIDC_*`` settings that cannot work (checked at start-up)."""


class OidcError(Exception):
    """A sign-in that did not succeed; ``reason`` is a short code for the page and log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(name: str, url: str) -> str:
    """``https://``, or ``http://`` to a loopback address (a provider in a test)."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    if parsed.scheme == "https" and host:
        return url
    if parsed.scheme == "http" and _is_loopback(host):
        return url
    msg = f"{name} must be an https:// URL (http:// only on a loopback address): {url!r}"
    raise OidcConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str | None = None
    scopes: str = DEFAULT_SCOPES
    #: Where the provider sends the browser back (default: this console's callback
    #: URL as the request reached it; set it behind a proxy).
    redirect_uri: str | None = None
    user_claim: str = "sub"
    organization_claim: str = "org"
    operator_claim: str = "groups"
    #: The ``operator_claim`` value that makes an operator (none: no operator by OIDC).
    operator_group: str | None = None
    #: How long the console session's token lasts.
    session_seconds: int = DEFAULT_SESSION_SECONDS
    #: The provider's name on the sign-in button.
    display_name: str = "OpenID Connect"

    def __post_init__(self) -> None:
        check_url("SUITE_OIDC_ISSUER", self.issuer)
        if not self.client_id:
            msg = "SUITE_OIDC_CLIENT_ID is required when SUITE_OIDC_ISSUER is set"
            raise OidcConfigurationError(msg)
        if "openid" not in self.scopes.split():
            msg = f"SUITE_OIDC_SCOPES must include 'openid': {self.scopes!r}"
            raise OidcConfigurationError(msg)
        if self.redirect_uri is not None:
            check_url("SUITE_OIDC_REDIRECT_URI", self.redirect_uri)
        if self.session_seconds <= 0:
            msg = "SUITE_OIDC_SESSION_SECONDS must be positive"
            raise OidcConfigurationError(msg)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        """The settings from ``SUITE_OIDC_*``; None when no issuer is configured."""
        issuer = env.get("SUITE_OIDC_ISSUER", "").strip()
        if not issuer:
            return None
        seconds = env.get("SUITE_OIDC_SESSION_SECONDS", "").strip()
        if seconds and not seconds.isdigit():
            msg = f"SUITE_OIDC_SESSION_SECONDS must be a number of seconds: {seconds!r}"
            raise OidcConfigurationError(msg)
        return cls(
            issuer=issuer,
            client_id=env.get("SUITE_OIDC_CLIENT_ID", "").strip(),
            client_secret=env.get("SUITE_OIDC_CLIENT_SECRET") or None,
            scopes=env.get("SUITE_OIDC_SCOPES", "").strip() or DEFAULT_SCOPES,
            redirect_uri=env.get("SUITE_OIDC_REDIRECT_URI", "").strip() or None,
            user_claim=env.get("SUITE_OIDC_USER_CLAIM", "").strip() or "sub",
            organization_claim=env.get("SUITE_OIDC_ORGANIZATION_CLAIM", "").strip() or "org",
            operator_claim=env.get("SUITE_OIDC_OPERATOR_CLAIM", "").strip() or "groups",
            operator_group=env.get("SUITE_OIDC_OPERATOR_GROUP", "").strip() or None,
            session_seconds=int(seconds) if seconds else DEFAULT_SESSION_SECONDS,
            display_name=env.get("SUITE_OIDC_NAME", "").strip() or "OpenID Connect",
        )


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the session keeps between the redirect and the callback."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "next": self.next,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PendingSignIn | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["code_verifier"]),
                redirect_uri=str(data["redirect_uri"]),
                next=data.get("next") if isinstance(data.get("next"), str) else None,
            )
        except KeyError:
            return None


def s256_challenge(code_verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _get_json(url: str) -> dict[str, Any]:
    # Only URLs check_url let through (https://, or http:// to a loopback address).
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:  # noqa: S310
            found = json.loads(answer.read())
    except (OSError, ValueError) as error:
        raise OidcError("provider_unreachable", f"{url}: {error}") from None
    if not isinstance(found, dict):
        raise OidcError("provider_answer_invalid", url)
    return found


class OidcProvider:
    """One configured provider: its discovery document, keys and token endpoint."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None

    def metadata(self) -> dict[str, Any]:
        """The discovery document (cached an hour); its ``issuer`` must be ours."""
        with self._lock:
            fresh = time.monotonic() - self._metadata_at < METADATA_LIFESPAN_SECONDS
            if self._metadata is not None and fresh:
                return self._metadata
        issuer = self.settings.issuer.rstrip("/")
        found = _get_json(f"{issuer}/.well-known/openid-configuration")
        if found.get("issuer") != self.settings.issuer:
            raise OidcError(
                "issuer_mismatch",
                f"the discovery document names {found.get('issuer')!r}",
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(name), str):
                raise OidcError("provider_answer_invalid", f"no {name}")
            try:
                check_url(name, found[name])
            except OidcConfigurationError as error:
                raise OidcError("provider_answer_invalid", str(error)) from None
        methods = found.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise OidcError("pkce_not_supported", "the provider does not offer S256")
        with self._lock:
            if self._metadata is None or self._metadata.get("jwks_uri") != found["jwks_uri"]:
                self._jwks = jwt.PyJWKClient(found["jwks_uri"], timeout=HTTP_TIMEOUT_SECONDS)
            self._metadata, self._metadata_at = found, time.monotonic()
        return found

    def begin(self, redirect_uri: str, next_path: str | None) -> tuple[str, PendingSignIn]:
        """The provider's authorization URL, and what to keep for the callback."""
        metadata = self.metadata()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 characters: within RFC 7636's 43..128
            redirect_uri=redirect_uri,
            next=next_path,
        )
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": s256_challenge(pending.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = metadata["authorization_endpoint"]
        separator = "&" if urllib.parse.urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{query}", pending

    def finish(self, pending: PendingSignIn, arguments: Mapping[str, str]) -> dict[str, Any]:
        """The verified ID token's claims for the provider's answer to ``pending``."""
        if "error" in arguments:
            raise OidcError("provider_refused", arguments.get("error", ""))
        state = arguments.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise OidcError("state_mismatch")
        code = arguments.get("code", "")
        if not code:
            raise OidcError("no_code")
        tokens = self._exchange(code, pending)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("no_id_token")
        return self.verify_id_token(id_token, nonce=pending.nonce)

    def _exchange(self, code: str, pending: PendingSignIn) -> dict[str, Any]:
        metadata = self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
            "client_id": self.settings.client_id,
        }
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        secret = self.settings.client_secret
        if secret is not None:
            methods = metadata.get("token_endpoint_auth_methods_supported")
            # client_secret_basic is the default (OIDC Core §9); the form only
            # when the provider says it takes nothing else.
            if isinstance(methods, list) and "client_secret_basic" not in methods:
                form["client_secret"] = secret
            else:
                pair = (
                    f"{urllib.parse.quote(self.settings.client_id, safe='')}:"
                    f"{urllib.parse.quote(secret, safe='')}"
                )
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        request = urllib.request.Request(  # noqa: S310  (checked by metadata())
            metadata["token_endpoint"],
            data=urllib.parse.urlencode(form).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:  # noqa: S310
                found = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise OidcError("token_refused", f"HTTP {error.code}") from None
        except (OSError, ValueError) as error:
            raise OidcError("provider_unreachable", str(error)) from None
        if not isinstance(found, dict):
            raise OidcError("provider_answer_invalid", "the token answer is not an object")
        return found

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        metadata = self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in ASYMMETRIC_ALGORITHMS if a in offered]
        if not algorithms:
            raise OidcError("provider_answer_invalid", f"no accepted algorithm in {offered}")
        assert self._jwks is not None  # made with the metadata
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=algorithms,
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcError("id_token_expired") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
            raise OidcError("id_token_invalid", str(error)) from None
        audience = claims.get("aud")
        several = isinstance(audience, list) and len(audience) > 1
        if several and claims.get("azp") != self.settings.client_id:
            raise OidcError("id_token_invalid", "azp is not this client")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise OidcError("nonce_mismatch")
        return claims


@dataclass(frozen=True, slots=True)
class MappedPrincipal:
    user_id: str
    organization_id: str | None
    is_operator: bool


def _claim_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def principal_claims(settings: OidcSettings, claims: Mapping[str, Any]) -> MappedPrincipal:
    """Who the verified claims name: an operator, or a user of one organization."""
    user = claims.get(settings.user_claim)
    if not isinstance(user, str) or not user.strip() or text_problem(user):
        raise OidcError("no_user", f"the ID token has no usable {settings.user_claim!r} claim")
    groups = _claim_values(claims.get(settings.operator_claim))
    if settings.operator_group is not None and settings.operator_group in groups:
        return MappedPrincipal(user_id=user, organization_id=None, is_operator=True)
    organization = claims.get(settings.organization_claim)
    if not isinstance(organization, str) or not organization or text_problem(organization):
        raise OidcError(
            "no_organization",
            f"the ID token has no {settings.organization_claim!r} claim",
        )
    return MappedPrincipal(user_id=user, organization_id=organization, is_operator=False)
