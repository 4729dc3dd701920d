"""Card numbers as people and attackers write them, and a search that finds them.

One list for every ring: the detector's unit tests, the HTTP guard, the
hostile-input corpus and the search of a real deployment's files.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

#: Visa's test number (Luhn-valid, 16 digits).
CARD_NUMBER = "4111111111111111"
#: Mastercard's test number, for a second card in one request.
OTHER_CARD_NUMBER = "5555555555554444"


def _grouped(digits: str, separator: str, size: int = 4) -> str:
    return separator.join(digits[i : i + size] for i in range(0, len(digits), size))


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) - ord("0") + 0xFF10) if c.isdigit() else c for c in text)


def spellings(digits: str = CARD_NUMBER) -> dict[str, str]:
    """``label -> text``: the number in every separator style the service must catch."""
    return {
        "plain": digits,
        "spaces": _grouped(digits, " "),
        "dashes": _grouped(digits, "-"),
        "dots": _grouped(digits, "."),
        "double spaces": _grouped(digits, "  "),
        "nbsp": _grouped(digits, "\u00a0"),
        "ideographic space": _grouped(digits, "\u3000"),
        "tab": _grouped(digits, "\t"),
        "slash": _grouped(digits, "/"),
        "spaced dash": _grouped(digits, " - "),
        "underscore": _grouped(digits, "_"),
        "comma": _grouped(digits, ","),
        "every digit apart": " ".join(digits),
        "full-width": _full_width(_grouped(digits, " ")),
        "in a sentence": f"card {_grouped(digits, ' ')} exp 12/28",
        "before its expiry": f"{_grouped(digits, ' ')} 12/28 123",
    }


#: Spellings that fit in an HTTP header or a URL path segment (visible ASCII).
ASCII_SPELLINGS = {
    label: text
    for label, text in spellings().items()
    if text.isascii() and text.isprintable() and "/" not in text
}


def _readings(blob: bytes) -> list[str]:
    """Every way a stored or logged byte string can be read back as text.

    As UTF-8; with PostgreSQL's hex ``bytea`` (``\\x7b22…``, how pg_dump
    writes the events' state) decoded; with JSON ``\\u00a0`` escapes, COPY's
    ``\\t`` escapes and URL ``%20`` escapes undone; each also NFKC-normalised
    (full-width digits read as ASCII ones).
    """
    blobs = [blob]
    blobs += [bytes.fromhex(h.decode()) for h in re.findall(rb"\\x((?:[0-9a-f]{2})+)", blob)]
    texts: list[str] = []
    for each in blobs:
        text = each.decode("utf-8", "replace")
        unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
        unescaped = re.sub(r"(?:\\x[0-9a-fA-F]{2})+", _hex_escapes, unescaped)
        unescaped = re.sub(r"\\[tnrvf]", " ", unescaped)
        for reading in (text, unescaped, urllib.parse.unquote(unescaped)):
            texts += [reading, unicodedata.normalize("NFKC", reading)]
    return texts


def _hex_escapes(match: re.Match[str]) -> str:
    raw = bytes.fromhex(match.group().replace("\\x", ""))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def holds_card_number(blob: bytes, digits: str = CARD_NUMBER) -> bool:
    """Whether ``digits`` appear in ``blob`` in any spelling, however escaped."""
    pattern = re.compile(r"[\W_]*".join(digits))
    return any(pattern.search(reading) for reading in _readings(blob))
