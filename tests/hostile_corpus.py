"""The hostile-input corpus: every text the API takes, with every hostile value.

:func:`hostile_requests` yields, for one organization, a request per (place
where a string goes, hostile value of :data:`tests.hostile_values.HOSTILE_TEXT`):
every string field of every command body (and every field name), the string
path segment, the query parameters, the ``Idempotency-Key`` header — plus a
body nested too deep and one too large for every command. The tests that send
them (in-process on every store, and over HTTP to gunicorn with a real
``suitesub worker``) assert each is refused with a JSON error and that nothing
was recorded, and then compare the views with a rebuild.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from interface.app import MAX_BODY_BYTES
from tests.hostile_values import HOSTILE_TEXT, HostileText

CONTACT = {"company_name": "Acme KK", "country": "JP", "email": "billing@acme.example"}
QUOTE = {
    "billing_period": "yearly",
    "seats": 10,
    "add_ons": [{"code": "storage-10gb", "quantity": 2}],
    "billing_contact": CONTACT,
}
#: (label, method, path under the organization or absolute, operator?, a valid body).
COMMANDS: tuple[tuple[str, str, str, bool, dict[str, Any]], ...] = (
    (
        "register",
        "POST",
        "/v1/organizations",
        True,
        {"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
    ),
    (
        "standalone-plan",
        "PUT",
        "{org}/services/desk/subscription",
        True,
        {
            "seats": 3,
            "billing_period": "monthly",
            "amount_paid": 9_000,
            "period_start": "2026-11-01",
            "period_end": "2026-12-01",
            "super_admin": "u-alice",
            "admins": ["u-bob"],
        },
    ),
    (
        "service-admins",
        "PUT",
        "{org}/services/crm/admins",
        True,
        {"super_admin": "u-alice", "admins": ["u-bob"]},
    ),
    ("quote", "POST", "{org}/upgrade/quote", False, QUOTE),
    (
        "upgrade",
        "POST",
        "{org}/upgrade",
        False,
        {**QUOTE, "payment_token": "tok_visa", "expected_total": 1},
    ),
)
ORGANIZATION_PREFIX = "/v1/organizations/"


@dataclass(frozen=True)
class HostileRequest:
    label: str
    method: str
    path: str
    operator: bool
    #: The JSON body (``raw`` wins when set).
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The error code the answer must carry (``None``: any JSON 4xx error).
    refused_with: str | None = None


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*path, index))


def _replaced(body: Any, path: tuple[Any, ...], text: str) -> Any:
    changed = copy.deepcopy(body)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = text
    return changed


def _name(path: tuple[Any, ...]) -> str:
    return ".".join(str(step) for step in path)


def _nested(depth: int) -> bytes:
    return ('{"a": ' + "[" * depth + "]" * depth + "}").encode()


def _url_text(text: str) -> str:
    """Percent-encoded UTF-8 (a lone surrogate as its three bytes: what a client can send)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def hostile_requests(
    organization_id: str, values: tuple[HostileText, ...] = HOSTILE_TEXT
) -> Iterator[HostileRequest]:
    org = f"{ORGANIZATION_PREFIX}{organization_id}"
    for label, method, template, operator, body in COMMANDS:
        path = template.format(org=org)
        for hostile in values:
            for leaf in _string_leaves(body):
                yield HostileRequest(
                    f"{label}:{_name(leaf)}:{hostile.name}",
                    method,
                    path,
                    operator,
                    body=_replaced(body, leaf, hostile.text),
                    refused_with=hostile.refused_with,
                )
            yield HostileRequest(
                f"{label}:field-name:{hostile.name}",
                method,
                path,
                operator,
                body={**body, hostile.text: "x"},
            )
        yield HostileRequest(
            f"{label}:deep",
            method,
            path,
            operator,
            raw=_nested(1_000),
            refused_with="json_too_deep",
        )
        huge = json.dumps({**body, "pad": "x" * MAX_BODY_BYTES}).encode()
        yield HostileRequest(
            f"{label}:huge", method, path, operator, raw=huge, refused_with="request_too_large"
        )
    for hostile in values:
        segment = _url_text(f"crm{hostile.text}")
        yield HostileRequest(
            f"path:service:{hostile.name}",
            "PUT",
            f"{org}/services/{segment}/admins",
            True,
            body={"super_admin": "u-alice", "admins": []},
        )
        for query_path in (
            f"/v1/organizations?state={_url_text(hostile.text)}",
            f"{org}/access?min_position={_url_text(hostile.text)}",
            f"{org}/events?{_url_text(hostile.text)}=1",
        ):
            yield HostileRequest(
                f"query:{query_path.split('?')[1][:12]}:{hostile.name}", "GET", query_path, True
            )
        yield HostileRequest(
            f"header:idempotency-key:{hostile.name}",
            "POST",
            f"{org}/trial",
            False,
            body={},
            headers={"Idempotency-Key": f"key-{hostile.text}"},
        )


def sendable(request: HostileRequest) -> bool:
    """Whether a client can send the request's headers at all (latin-1, no line break);
    raw header bytes are tests/interface/test_gunicorn_edges.py's."""
    for value in request.headers.values():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return False
        if "\r" in value or "\n" in value:
            return False
    return True


def assert_refused(request: HostileRequest, status: int, answer: Any) -> None:
    """A JSON error in the one shape, 4xx, with the expected code when there is one."""
    assert 400 <= status < 500, (request.label, status, answer)
    assert isinstance(answer, dict), (request.label, answer)
    assert set(answer) == {"error"}, (request.label, answer)
    assert set(answer["error"]) == {"code", "message", "details", "request_id"}, request.label
    if request.refused_with is not None:
        assert answer["error"]["code"] == request.refused_with, (request.label, answer)
