"""Card numbers (PANs) in text: the one detector every layer uses.

The service takes payment *tokens* only and must never record, echo or log a
card number. A card number is found however it is written:

- its digits may be separated by any run of characters that are neither
  letters nor digits — spaces (also doubled), NBSP and every other Unicode
  space, tabs, newlines, ``.``, ``/``, ``-``, ``" - "``, ``_``, ``,``, ``:``,
  zero-width characters, punctuation of any script;
- its digits may be any Unicode decimal digits: full-width ``４１１１`` (what a
  Japanese input method types), Arabic-Indic, Devanagari, … count with their
  value, as a reader (or a card form) would read them;
- it may sit inside other text, and next to other digit groups: the digits
  before and after are not glued to it (``4111 1111 1111 1111 12/28`` holds a
  card number followed by an expiry).

What counts: 13 to 19 digits in consecutive *groups* (a group is a run of
adjacent digits; groups are joined by separators) that pass the Luhn check.
A letter ends a sequence. A group longer than 19 digits is one long number,
not a card number. A canonical UUID (8-4-4-4-12 hexadecimal, standing on its
own) is an identifier, not a card: organization ids and the user ids of
identity providers are UUIDs, and about one in ten thousand random UUIDs
would otherwise read as a card number (its digit-only segments joined by
dashes); no card is written in 8-4-4 groups.

A value made of parts (a list of user ids, a body, a query string) is also
searched as a whole, its parts in order with their names between them, so a
number spread over several parts (``["4111 1111", "1111 1111"]``) is found
as the stored JSON would show it.

The price of finding every spelling is that some innocent text is refused:
about one in ten arbitrary 13–19 digit sequences passes the Luhn check, so a
long phone list or a run of IP addresses in one field may be refused as card
data. The service's own fields (names, user ids, contacts, keys) never need
such text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from domain.errors import InvalidRequest

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19
CARD_DATA_CODE = "raw_card_data_not_accepted"
CARD_DATA_MESSAGE = (
    "Card numbers, CVCs and expiry dates are never accepted: tokenize the card "
    "with the payment form and send its payment_token instead."
)
#: What a masked card number reads as in a log line.
MASK = "[card number removed]"
#: The most locations one refusal names (a hostile body could name thousands).
MAX_LOCATIONS = 20

# ``\d`` is every Unicode decimal digit; ``[\W_]`` every character that is
# neither a letter nor a digit. The two classes are disjoint, so the pattern
# scans in linear time.
_SEPARATED_DIGITS = re.compile(r"\d+(?:[\W_]+\d+)*")
_DIGIT_GROUP = re.compile(r"\d+")
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of decimal digits (any script)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = unicodedata.decimal(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


#: A run of at least :data:`MIN_PAN_DIGITS` digits under separators: what every
#: card number needs. Most text (ids, names, envelopes) holds none, and one
#: search says so; the webhook_delivery benchmark's delivery ids (random_id)
#: paid 12 µs each for the full scan below.
_LONG_ENOUGH_RUN = re.compile(rf"\d(?:[\W_]*\d){{{MIN_PAN_DIGITS - 1}}}")
#: What that run needs first, and a simpler search finds sooner: as many
#: characters in a row that are not letters (a card number's digits and
#: separators). Random hex ids (every request's id) fail it 2-3 times faster
#: (benchmark access_read_http).
_LONG_ENOUGH_NON_LETTERS = re.compile(rf"[\d\W_]{{{MIN_PAN_DIGITS}}}")


def card_number_spans(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every card number in ``text``, from first to last digit."""
    if _LONG_ENOUGH_NON_LETTERS.search(text) is None or _LONG_ENOUGH_RUN.search(text) is None:
        return
    if "-" in text:  # a UUID reads as letters (same length: the spans stay right)
        text = _UUID.sub(lambda uuid: "u" * len(uuid.group()), text)
    for run in _SEPARATED_DIGITS.finditer(text):
        groups = list(_DIGIT_GROUP.finditer(run.group()))
        digits = "".join(group.group() for group in groups)
        if len(digits) < MIN_PAN_DIGITS:
            continue
        sums = _luhn_prefix_sums(digits)
        offsets = [0]  # where each group starts in ``digits``
        for group in groups:
            offsets.append(offsets[-1] + len(group.group()))
        for first in range(len(groups)):
            for last in range(first, len(groups)):
                length = offsets[last + 1] - offsets[first]
                if length > MAX_PAN_DIGITS:
                    break
                if length >= MIN_PAN_DIGITS:
                    end = offsets[last + 1]  # one past the window's last digit
                    parity = sums[end % 2]
                    if (parity[end] - parity[offsets[first]]) % 10 == 0:
                        yield run.start() + groups[first].start(), run.start() + groups[last].end()


def _luhn_prefix_sums(digits: str) -> tuple[list[int], list[int]]:
    """Prefix sums of Luhn terms, one list per parity of the window's end.

    A window ``digits[s:e]`` doubles every second digit counted from its
    right end, i.e. the digits at indexes of the other parity than ``e``:
    its Luhn sum is ``sums[e % 2][e] - sums[e % 2][s]`` — each window costs
    O(1), so a hostile body of thousands of digit groups is scanned quickly.
    """
    by_parity: tuple[list[int], list[int]] = ([0], [0])
    for index, char in enumerate(digits):
        value = unicodedata.decimal(char)
        doubled = value * 2 - 9 if value > 4 else value * 2
        # End parity p: the digit at index i is doubled when i % 2 == p.
        for parity in (0, 1):
            term = doubled if index % 2 == parity else value
            by_parity[parity].append(by_parity[parity][-1] + term)
    return by_parity


def contains_card_number(text: str) -> bool:
    return next(card_number_spans(text), None) is not None


def mask_card_numbers(text: str) -> str:
    """``text`` with every card number replaced by :data:`MASK` (for log lines)."""
    spans = list(card_number_spans(text))
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end in sorted(spans):
        if start < cursor:  # overlaps the span masked last: widen it
            cursor = max(cursor, end)
            continue
        pieces.append(text[cursor:start])
        pieces.append(MASK)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def card_number_locations(value: Any, path: str = "") -> Iterator[str]:
    """Where in ``value`` (JSON-like, nested) a card number sits: paths, never values.

    Keys are searched as well as values; a key that holds a card number is
    named by its position (``/billing_contact/#2``: the third key). Numbers
    are searched as their decimal text (``4111111111111111`` sent as a JSON
    number is a card number).
    """
    if isinstance(value, Mapping):
        for position, (key, item) in enumerate(value.items()):
            if contains_card_number(str(key)):
                yield f"{path}/#{position}"
            else:
                yield from card_number_locations(item, f"{path}/{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from card_number_locations(item, f"{path}/{index}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, str | int | float) and contains_card_number(str(value)):
        yield path or "/"


def whole_text(value: Any) -> str:
    """``value``'s names and leaves in order, one space apart (see the module docstring)."""
    if isinstance(value, Mapping):
        return " ".join(f"{key} {whole_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return " ".join(whole_text(item) for item in value)
    if value is None:
        return "null"  # as JSON writes it: letters, that end a sequence
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def card_data_in_parts(value: Any, path: str = "") -> Iterator[str]:
    """:func:`card_number_locations`; if no part holds one, the whole (``path``)."""
    found = False
    for location in card_number_locations(value, path):
        found = True
        yield location
    if not found and contains_card_number(whole_text(value)):
        yield path or "/"


class CardDataNotAccepted(InvalidRequest):
    """Text that holds a card number: refused, naming where, never the value."""

    code = CARD_DATA_CODE

    def __init__(self, locations: list[str]) -> None:
        super().__init__(CARD_DATA_MESSAGE, details={"locations": locations[:MAX_LOCATIONS]})


def refuse_card_numbers(texts: Mapping[str, Any]) -> None:
    """Raise :class:`CardDataNotAccepted` if any of ``texts`` holds a card number.

    ``texts`` maps a field name to its value (a string, or nested lists and
    objects of them); the refusal names the fields (``admins/0``).
    """
    locations = [
        location for name, value in texts.items() for location in card_data_in_parts(value, name)
    ]
    if locations:
        raise CardDataNotAccepted(locations)
