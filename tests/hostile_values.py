"""Hostile text: the one list every hostile-input test draws from.

Each value is something an attacker (or a broken client) puts in a string
field, header, path segment or query parameter, with the error code the
service must answer. Add new values to :data:`HOSTILE_TEXT` here, and every
test that iterates it — the edge's, the corpus over HTTP on every store —
covers them (the domain's tests iterate :data:`CONTROL_TEXT`, what the domain
itself refuses).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.card_spellings import spellings


@dataclass(frozen=True, slots=True)
class HostileText:
    #: A short name (the test id).
    name: str
    #: The text sent (often with harmless text around the hostile part).
    text: str
    #: The error code that refuses it.
    refused_with: str = "validation_failed"


#: Control characters, DEL and lone surrogates: refused everywhere (domain/text.py).
CONTROL_TEXT: tuple[HostileText, ...] = (
    HostileText("nul", "x\u0000"),
    HostileText("nul-alone", "\u0000"),
    HostileText("soh", "a\u0001b"),
    HostileText("bell", "a\u0007"),
    HostileText("tab", "a\tb"),
    HostileText("line-feed", "u-alice\nINFO forged log line"),
    HostileText("carriage-return", "a\rb"),
    HostileText("escape", "\u001b[31mred"),
    HostileText("unit-separator", "\u001fa"),
    HostileText("del", "a\u007f"),
    HostileText("c1-pad", "a\u0080"),
    HostileText("c1-next-line", "a\u0085"),
    HostileText("c1-csi", "\u009b31m"),
    HostileText("lone-high-surrogate", "\ud800"),
    HostileText("lone-low-surrogate", "a\udfff"),
    HostileText("reversed-surrogate-pair", "\udc00\ud800"),
)

#: Card numbers in every separator style (tests/card_spellings.py): refused
#: everywhere, before any other check (domain/card_numbers.py).
CARD_TEXT: tuple[HostileText, ...] = tuple(
    HostileText(f"card-{label.replace(' ', '-')}", text, "raw_card_data_not_accepted")
    for label, text in spellings().items()
)

#: Everything the corpus sends to every text field.
HOSTILE_TEXT: tuple[HostileText, ...] = (*CONTROL_TEXT, *CARD_TEXT)
