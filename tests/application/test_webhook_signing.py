"""The signatures verify the ways docs/webhooks.md tells receivers to verify them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from application.clocks import SystemClock
from application.webhooks.signing import new_secret, signed_headers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
BODY = '{"id":"evt_1","type":"trial.started"}'


def documented_hmac_verifier() -> Any:
    """The plain-hmac ``verify`` function, exactly as the docs print it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    source = next(b for b in blocks if "def verify(" in b)
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    return namespace["verify"]


def test_standardwebhooks_and_the_documented_hmac_both_verify() -> None:
    secret = new_secret()
    headers = signed_headers([secret], "evt_1", SystemClock().now(), BODY)
    assert Webhook(secret).verify(BODY, headers) == {"id": "evt_1", "type": "trial.started"}
    assert documented_hmac_verifier()(secret, BODY.encode(), headers)
    assert not documented_hmac_verifier()(new_secret(), BODY.encode(), headers)


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = signed_headers([new, old], "evt_1", SystemClock().now(), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)
        assert documented_hmac_verifier()(secret, BODY.encode(), headers)


def test_a_timestamp_older_than_five_minutes_is_refused() -> None:
    secret = new_secret()
    stale = SystemClock().now() - timedelta(minutes=6)
    headers = signed_headers([secret], "evt_1", stale, BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)
    assert not documented_hmac_verifier()(secret, BODY.encode(), headers)
    assert datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC) < stale + timedelta(
        seconds=1
    )
