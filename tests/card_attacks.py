"""A card number sent through every channel of the API, in every spelling.

The same requests go to the in-process app (``tests/interface``) and to a
real ``suitesub serve`` (``tests/processes``): each is a plain
:class:`Attack` a caller sends with its own client. Header values are
bytes (UTF-8, as a client writes them).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.card_spellings import spellings
from tests.interface.conftest import CRM_YEARLY, UPGRADE_BODY

#: A quote's body; a purchase adds ``payment_token`` and ``expected_total``.
UPGRADE: dict[str, Any] = UPGRADE_BODY
#: A CRM plan whose super admin is u-alice (who may then buy the bundle).
PLAN = CRM_YEARLY


@dataclass(frozen=True)
class Attack:
    """One request carrying a card number; ``as_user`` or the operator sends it."""

    channel: str
    spelling: str
    method: str
    path: str
    headers: dict[str, bytes] = field(default_factory=dict)
    body: Any = None
    as_operator: bool = False

    @property
    def name(self) -> str:
        return f"{self.channel} ({self.spelling})"


def attacks(organization_id: str, expected_total: int) -> list[Attack]:
    """Every channel × every spelling, against one organization (CRM admin u-alice)."""
    org = f"/v1/organizations/{organization_id}"
    found: list[Attack] = []
    for spelling, card in spellings().items():
        wire = card.encode("utf-8")
        coded = quote(card, safe="")
        basic = b"Basic " + base64.b64encode(wire + b":x")
        upgrade = {**UPGRADE, "payment_token": "tok_visa", "expected_total": expected_total}
        contact: dict[str, Any] = dict(UPGRADE["billing_contact"])
        keyed = {**contact, card: "x"}
        contact["company_name"] = card
        found += [
            Attack("path segment", spelling, "GET", f"{org}/services/{coded}/admins"),
            Attack("query value", spelling, "GET", f"{org}/access?min_position={coded}"),
            Attack("query name", spelling, "GET", f"{org}/access?{coded}=1"),
            Attack(
                "Idempotency-Key",
                spelling,
                "POST",
                f"{org}/upgrade",
                {"Idempotency-Key": wire},
                upgrade,
            ),
            Attack("X-Request-ID", spelling, "GET", f"{org}/access", {"X-Request-ID": wire}),
            Attack("User-Agent", spelling, "GET", f"{org}/access", {"User-Agent": wire}),
            Attack("Referer", spelling, "GET", f"{org}/access", {"Referer": b"http://x/" + wire}),
            Attack("X-Note", spelling, "GET", f"{org}/access", {"X-Note": wire}),
            Attack("Basic user", spelling, "GET", f"{org}/access", {"Authorization": basic}),
            Attack(
                "organization name",
                spelling,
                "POST",
                "/v1/organizations",
                {"Idempotency-Key": f"name-{spelling}".encode()},
                {"name": card, "country": "JP", "owner_user_id": "u-owner"},
                as_operator=True,
            ),
            Attack(
                "owner user id",
                spelling,
                "POST",
                "/v1/organizations",
                body={"name": "Acme", "country": "JP", "owner_user_id": card},
                as_operator=True,
            ),
            Attack(
                "admins",
                spelling,
                "PUT",
                f"{org}/services/desk/subscription",
                body={**PLAN, "admins": ["u-bob", card]},
                as_operator=True,
            ),
            Attack(
                "billing contact",
                spelling,
                "POST",
                f"{org}/upgrade",
                {"Idempotency-Key": f"contact-{spelling}".encode()},
                {**upgrade, "billing_contact": contact},
            ),
            Attack(
                "body key",
                spelling,
                "POST",
                f"{org}/upgrade/quote",
                body={**UPGRADE, "billing_contact": keyed},
            ),
            Attack(
                "payment token",
                spelling,
                "POST",
                f"{org}/upgrade",
                {"Idempotency-Key": f"token-{spelling}".encode()},
                {**upgrade, "payment_token": card},
            ),
        ]
    return found


def expected_status(attack: Attack) -> int:
    """422 everywhere, except a request id (replaced: served) and a Basic user (401)."""
    if attack.channel == "X-Request-ID":
        return 200
    if attack.channel == "Basic user":
        return 401  # no card number is visible in the header; the token is no bearer
    return 422
