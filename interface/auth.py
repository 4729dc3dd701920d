"""Bearer JWT authentication and tenant isolation (SPEC §6).

Tokens are HS256 with ``SUITE_JWT_SECRET`` — or RS256, verified with the
public key in ``SUITE_JWT_PUBLIC_KEY_FILE`` when one is configured (an
identity provider signs, the service only verifies). ``exp`` is required;
``alg: none`` and every other algorithm are refused; the key is chosen by the
algorithm, so a public key can never be used as an HMAC secret; a small
leeway absorbs clock skew.
Claims: ``sub`` (the acting user) and either ``org`` (the one organization a
user acts in) or ``scope: operator`` (the back office).

Authorization here is only *which organization* and *operator or not*; what
a user may do inside their organization is decided by the domain.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import jwt

from application.errors import OrganizationNotFound
from domain.text import text_problem
from interface.errors import ApiError

ALGORITHM = "HS256"
PUBLIC_KEY_ALGORITHM = "RS256"
LEEWAY_SECONDS = 30
OPERATOR_SCOPE = "operator"
DEFAULT_TOKEN_TTL_SECONDS = 12 * 3600
DEV_SECRET_FILE = "jwt-dev-secret"
MIN_SECRET_LENGTH = 32


class MissingSecretError(RuntimeError):
    """Production start-up without a usable ``SUITE_JWT_SECRET`` (unset or too short)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user acting in one organization, or an operator."""

    user_id: str
    organization_id: str | None
    is_operator: bool
    #: ``organization_id`` as a UUID, parsed once: a verified principal is
    #: remembered with its token, and every request of an organization's
    #: routes compares it (benchmark access_read_http).
    organization_uuid: UUID | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "organization_uuid", _as_uuid(self.organization_id))

    def require_organization(self, organization_id: UUID) -> None:
        """A user token naming another organization sees nothing: 404, never 403."""
        if not self.is_operator and self.organization_uuid != organization_id:
            raise OrganizationNotFound(organization_id)

    def require_operator(self) -> None:
        if not self.is_operator:
            raise ApiError(403, "operator_only", "Only a back-office operator token may do this.")


def _as_uuid(value: str | None) -> UUID | None:
    """The token's ``org`` as a UUID (any spelling of the same id matches)."""
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def _unauthorized(code: str, message: str) -> ApiError:
    header = f'Bearer error="invalid_token", error_description="{message}"'
    if code == "authentication_required":
        header = "Bearer"
    return ApiError(401, code, message, headers={"WWW-Authenticate": header})


def _verification_key(token: str, secret: str, public_key: str | None) -> tuple[str, str]:
    """(key, algorithm) for this token's declared algorithm, or a 401."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError:
        raise _unauthorized("invalid_token", "The token is not valid.") from None
    if algorithm == ALGORITHM:
        return secret, ALGORITHM
    if algorithm == PUBLIC_KEY_ALGORITHM and public_key:
        return public_key, PUBLIC_KEY_ALGORITHM
    raise _unauthorized("invalid_token", "The token's algorithm is not accepted.")


#: Tokens whose signature and claims were verified, with their principal:
#: clients repeat the same token on every request, and verifying it again (an
#: HMAC, or an RSA signature) was a fifth of a cheap request's time.
VERIFIED_TOKENS_MAX = 4096
_verified: dict[tuple[str, str, str | None], tuple[float, Principal]] = {}


def authenticate(
    authorization: str | None, secret: str, public_key: str | None = None
) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, or a 401."""
    if not authorization:
        raise _unauthorized("authentication_required", "Send Authorization: Bearer <token>.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("authentication_required", "Send Authorization: Bearer <token>.")
    cache_key = (token.strip(), secret, public_key)
    cached = _verified.get(cache_key)
    # A token valid once stays valid until it expires (``nbf`` and ``iat``
    # only become truer); past ``exp`` it is decoded again, leeway and all.
    if cached is not None and time.time() < cached[0]:
        return cached[1]
    principal, expires_at = _verify(token.strip(), secret, public_key)
    while len(_verified) >= VERIFIED_TOKENS_MAX:  # the oldest go first
        _verified.pop(next(iter(_verified)))
    _verified[cache_key] = (expires_at, principal)
    return principal


def _verify(token: str, secret: str, public_key: str | None) -> tuple[Principal, float]:
    key, algorithm = _verification_key(token, secret, public_key)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token_expired", "The token has expired; get a new one.") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("invalid_token", "The token is not valid.") from None
    expires = claims["exp"]
    # RFC 7519 §2: a NumericDate is a JSON number; PyJWT also takes "123" strings.
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise _unauthorized("invalid_token", "The token's exp is not a number.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or text_problem(subject):
        raise _unauthorized("invalid_token", "The token names no user (sub).")
    expires_at = float(expires)
    if claims.get("scope") == OPERATOR_SCOPE:
        return Principal(user_id=subject, organization_id=None, is_operator=True), expires_at
    organization = claims.get("org")
    if not isinstance(organization, str) or not organization or text_problem(organization):
        raise _unauthorized("invalid_token", "The token names no organization (org).")
    return Principal(user_id=subject, organization_id=organization, is_operator=False), expires_at


def mint_token(
    secret: str,
    *,
    user_id: str,
    organization_id: str | None = None,
    operator: bool = False,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    issued_at: float | None = None,
) -> str:
    """A development token (``suitesub token``, tests). Expiry uses real time."""
    now = int(time.time() if issued_at is None else issued_at)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if operator:
        claims["scope"] = OPERATOR_SCOPE
    elif organization_id:
        claims["org"] = organization_id
    else:
        msg = "a user token needs an organization (or use operator=True)"
        raise ValueError(msg)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def resolve_secret(configured: str | None, *, environment: str | None, var_dir: Path) -> str:
    """The signing secret: configured, else (outside production) a dev secret on disk.

    In production a configured secret must have at least ``MIN_SECRET_LENGTH``
    bytes (an HS256 key shorter than its 32-byte hash can be guessed offline
    from one token).
    """
    production = (environment or "").lower() == "production"
    if configured:
        length = len(configured.encode("utf-8"))
        if production and length < MIN_SECRET_LENGTH:
            msg = (
                f"SUITE_JWT_SECRET is {length} bytes long. In production "
                "(SUITE_ENV=production) the service will not start with a secret shorter "
                f"than {MIN_SECRET_LENGTH} bytes: set it to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters "
                "(e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`)."
            )
            raise MissingSecretError(msg)
        return configured
    if production:
        msg = (
            "SUITE_JWT_SECRET is not set. In production (SUITE_ENV=production) the "
            "service will not start without it: set SUITE_JWT_SECRET to a random "
            f"string of at least {MIN_SECRET_LENGTH} characters shared by every API process."
        )
        raise MissingSecretError(msg)
    return development_secret(var_dir)


def development_secret(var_dir: Path) -> str:
    """Generated once under ``var/`` (mode 600) and then reused by every process."""
    path = var_dir / DEV_SECRET_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        candidate = var_dir / f".{DEV_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        # link() is atomic and refuses to overwrite: the first process wins,
        # the others read its secret.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return path.read_text().strip()
