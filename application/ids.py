"""Random ids that the card-data guard never mistakes for a card number.

Ids travel in URLs (``/receipts/chk_…``, ``/webhook-endpoints/we_…``), and the
guard refuses any request whose path holds a Luhn-valid run of 13 to 19
digits. A random hex id holds one now and then (about one in 200 of 32 hex
characters), which made such an id's own pages unreachable. So an id is drawn
again until :func:`domain.card_numbers.contains_card_number` — the guard's own
rule — finds nothing in it.
"""

from __future__ import annotations

import secrets

from domain.card_numbers import contains_card_number


def random_id(prefix: str, nbytes: int = 16) -> str:
    """``prefix`` + ``2 * nbytes`` random hex characters holding no card number."""
    while True:
        candidate = f"{prefix}{secrets.token_hex(nbytes)}"
        if not contains_card_number(candidate):
            return candidate
