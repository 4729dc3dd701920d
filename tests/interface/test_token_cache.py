"""Verified tokens are remembered per process, never beyond what they prove."""

from __future__ import annotations

import time

import pytest

from interface import auth
from interface.auth import authenticate, mint_token
from interface.errors import ApiError

SECRET = "s" * 48
ORG = "7d0c0a4e-4f5b-4c1e-9a55-6c1f0d2b9e01"


def test_a_remembered_token_is_verified_again_once_past_its_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = mint_token(SECRET, user_id="u-alice", organization_id=ORG, ttl_seconds=60)
    verified: list[str] = []
    verify = auth._verify

    def spy(token: str, secret: str, public_key: str | None) -> tuple[auth.Principal, float]:
        verified.append(token)
        return verify(token, secret, public_key)

    monkeypatch.setattr(auth, "_verify", spy)
    authenticate(f"Bearer {token}", SECRET)
    authenticate(f"Bearer {token}", SECRET)
    assert len(verified) == 1  # remembered
    later = time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    authenticate(f"Bearer {token}", SECRET)  # PyJWT's own clock: still within its leeway
    assert len(verified) == 2  # past exp: decoded again, so expiry is PyJWT's decision


def test_a_token_remembered_under_one_secret_is_not_accepted_under_another() -> None:
    token = mint_token(SECRET, user_id="u-alice", organization_id=ORG)
    authenticate(f"Bearer {token}", SECRET)
    with pytest.raises(ApiError) as refused:
        authenticate(f"Bearer {token}", "t" * 48)
    assert refused.value.code == "invalid_token"


def test_the_memory_of_tokens_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS_MAX", 3)
    for user in range(10):
        token = mint_token(SECRET, user_id=f"u-{user}", organization_id=ORG)
        assert authenticate(f"Bearer {token}", SECRET).user_id == f"u-{user}"
    assert len(auth._verified) <= 3
