"""Refuse raw card data before anything else sees the request.

The service takes payment *tokens* only. A request that carries something
that looks like card data is refused with ``422 raw_card_data_not_accepted``
before it is authenticated, logged by the service or stored:

- a card number (``domain.card_numbers``: 13–19 Luhn-valid digits under any
  separators, in any script) in a path segment, a query parameter's name or
  value, a header's name or value, or a body field's name or value (nested);
- a body field *named* like card data (a card number, CVC or expiry field).

Headers, decided one by one (docs/api.md, "Card data"):

- ``X-Request-ID`` holding a card number does not refuse the request: the
  id is replaced by a generated one (``interface.errors.request_id``), so
  it is never echoed nor logged;
- the transport headers (:data:`TRANSPORT_HEADERS`) are written by clients
  and proxies with addresses, ports and trace ids whose digit groups may
  read as card numbers; the service neither stores nor logs them (the access
  log masks every field), so they do not refuse a request;
- every other header — ``Idempotency-Key`` first: it is stored — refuses it.

A refusal names *where* (:func:`card_data_locations`), never the value; a
name that itself holds a card number is named by its position (``#2``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.wrappers import Request

from domain.card_numbers import (
    CardDataNotAccepted,
    card_number_locations,
    contains_card_number,
    whole_text,
)

_CARD_FIELD = re.compile(
    r"^(card|cards|cardnumber|cardno|ccnumber|creditcard|creditcardnumber|number|pan|"
    r"primaryaccountnumber|cvc|cvc2|cvv|cvv2|cid|csc|securitycode|cardsecuritycode|"
    r"exp|expiry|expiration|expirationdate|expdate|expmonth|expyear|expirymonth|"
    r"expiryyear|expirationmonth|expirationyear|track1|track2|trackdata|magstripe)$"
)

#: Replaced rather than refused (see the module docstring).
REQUEST_ID_HEADER = "x-request-id"
#: Connection and tracing headers: never stored nor logged, not refused.
TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-real-ip",
        "via",
        "traceparent",
        "tracestate",
    }
)


def is_card_field_name(name: str) -> bool:
    return bool(_CARD_FIELD.match(re.sub(r"[^a-z0-9]", "", name.lower())))


def card_data_locations(value: Any, path: str = "") -> Iterator[str]:
    """Where in a JSON body card data sits (JSON-pointer-like paths, no values)."""
    if isinstance(value, dict):
        for position, (key, item) in enumerate(value.items()):
            if contains_card_number(str(key)):
                yield f"{path}/#{position}"
            elif is_card_field_name(str(key)):
                yield f"{path}/{key}"
            else:
                yield from card_data_locations(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from card_data_locations(item, f"{path}/{index}")
    else:
        yield from card_number_locations(value, path)


def _wire_text(value: str) -> str:
    """A header as its sender wrote it: WSGI hands over latin-1, clients send UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


#: Texts longer than this are scanned every time, never remembered.
_REMEMBERED_TEXT = 2048
#: How many clean texts are remembered (then forgotten all at once).
_REMEMBERED_CLEAN = 4096
#: Digests of texts found to hold no card number. Only a digest is kept, and
#: only of a clean text: no card number, nor a bearer token, stays in memory
#: after its request.
_clean_digests: set[bytes] = set()


def _holds_card_number(text: str) -> bool:
    """:func:`contains_card_number` for a path segment or a header.

    Clients send the same few texts on every request (the token, the agent,
    the host, the organization's path): that a text is clean is remembered,
    bounded, since scanning them was an eighth of a ``GET …/access``
    (benchmark access_read_http). The answer is a pure function of the text,
    and a text that holds a card number is scanned (and refused) every time.
    """
    if len(text) > _REMEMBERED_TEXT:
        return contains_card_number(text)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    if digest in _clean_digests:
        return False
    if contains_card_number(text):
        return True
    if len(_clean_digests) >= _REMEMBERED_CLEAN:
        _clean_digests.clear()  # a set's clear and add are atomic under threads
    _clean_digests.add(digest)
    return False


def path_locations(path: str) -> list[str]:
    found = [
        f"path:{number}"
        for number, segment in enumerate(path.split("/")[1:], start=1)
        if _holds_card_number(segment)
    ]
    if not found and _holds_card_number(path):  # spread over segments
        found.append("path")
    return found


def query_locations(parameters: list[tuple[str, str]]) -> list[str]:
    found = []
    for position, (name, value) in enumerate(parameters):
        if contains_card_number(name):
            found.append(f"?#{position}")
        elif is_card_field_name(name) or contains_card_number(value):
            found.append(f"?{name}")
    if not found and contains_card_number(whole_text(parameters)):  # spread over parameters
        found.append("?")
    return found


def header_locations(headers: Iterable[tuple[str, str]]) -> Iterator[str]:
    for position, (name, value) in enumerate(headers):
        if _holds_card_number(_wire_text(name)):
            yield f"header:#{position}"
            continue
        lowered = name.lower()
        if lowered == REQUEST_ID_HEADER or lowered in TRANSPORT_HEADERS:
            continue
        if _holds_card_number(_wire_text(value)):
            yield f"header:{name}"


#: Requests (path and headers, no query string) longer than this are not remembered.
_REMEMBERED_REQUEST = 8192
#: Digests of whole requests whose path and headers were all found clean.
_clean_requests: set[bytes] = set()
#: The WSGI keys that are headers (``request.headers`` is made of them).
_HEADER_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _request_digest(request: Request) -> bytes | None:
    """One digest of the path and every header of a request without a query string.

    A client repeats its path and all its headers on every request: one look-up
    for them all instead of one per text (benchmark access_read_http). ``None``
    (not remembered) when a text holds the separator or the whole is long.
    """
    parts = [request.path]
    for key, value in request.environ.items():
        if key.startswith("HTTP_") or key in _HEADER_KEYS:
            parts += (key, value)
    try:
        joined = "\0".join(parts)
    except TypeError:  # pragma: no cover - a WSGI server handing over a non-text value
        return None
    if len(joined) > _REMEMBERED_REQUEST or joined.count("\0") != len(parts) - 1:
        return None
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def refuse_card_data_outside_the_body(request: Request) -> None:
    """422 for a card number in the path, the query string or a header."""
    digest = None if request.query_string else _request_digest(request)
    if digest is not None and digest in _clean_requests:
        return  # the same path and headers were found clean before
    locations = path_locations(request.path)
    # Most GETs send no query string (benchmark access_read_http): no parameters
    # hold no card number, so the parse and the whole-text scan of nothing are
    # skipped; any query string, even "?", is scanned as before.
    if request.query_string:
        locations += query_locations(list(request.args.items(multi=True)))
    locations += header_locations(request.headers.items())
    if locations:
        raise CardDataNotAccepted(locations)
    if digest is not None:
        if len(_clean_requests) >= _REMEMBERED_CLEAN:
            _clean_requests.clear()  # a set's clear and add are atomic under threads
        _clean_requests.add(digest)


def refuse_card_data_in_body(body: Any) -> None:
    locations = list(card_data_locations(body))
    if not locations and contains_card_number(whole_text(body)):  # spread over fields
        locations.append("/")
    if locations:
        raise CardDataNotAccepted(locations)
