"""Refuse raw card data before anything else sees the request body.

The service takes payment *tokens* only. A body that carries something that
looks like card data — a field named like a card number, CVC or expiry, or
any 13–19 digit number that passes the Luhn check, anywhere in the body or
the query string — is refused with ``422 raw_card_data_not_accepted``. The
refusal names *where* the data was found, never the value, and the body is
never logged or stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_CARD_FIELD = re.compile(
    r"^(card|cards|cardnumber|cardno|ccnumber|creditcard|creditcardnumber|number|pan|"
    r"primaryaccountnumber|cvc|cvc2|cvv|cvv2|cid|csc|securitycode|cardsecuritycode|"
    r"exp|expiry|expiration|expirationdate|expdate|expmonth|expyear|expirymonth|"
    r"expiryyear|expirationmonth|expirationyear|track1|track2|trackdata|magstripe)$"
)
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")
MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if MIN_PAN_DIGITS <= len(digits) <= MAX_PAN_DIGITS and luhn_valid(digits):
            return True
    return False


def is_card_field_name(name: str) -> bool:
    return bool(_CARD_FIELD.match(re.sub(r"[^a-z0-9]", "", name.lower())))


def card_data_locations(value: Any, path: str = "") -> Iterator[str]:
    """Where in ``value`` card-like data sits (JSON-pointer-ish paths, no values)."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}/{key}"
            if is_card_field_name(str(key)) or looks_like_card_number(str(key)):
                yield here
            else:
                yield from card_data_locations(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from card_data_locations(item, f"{path}/{index}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float | str) and looks_like_card_number(str(value)):
        yield path or "/"
