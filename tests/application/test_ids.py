"""Random ids never hold what the card-data guard refuses (they travel in URLs)."""

from __future__ import annotations

import pytest

from application import ids
from domain.card_numbers import contains_card_number

#: Luhn-valid, 16 digits: the guard refuses a path holding it.
CARD_LIKE = "4242424242424242"


def test_an_id_that_would_hold_a_card_number_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = iter([CARD_LIKE + "abcdef0123456789", "0123abcd" * 4])
    monkeypatch.setattr(ids.secrets, "token_hex", lambda _nbytes: next(drawn))
    assert contains_card_number("chk_" + CARD_LIKE + "abcdef0123456789")
    assert ids.random_id("chk_") == "chk_" + "0123abcd" * 4


def test_ids_have_their_prefix_and_length_and_no_card_number() -> None:
    for _ in range(2000):
        found = ids.random_id("we_", 12)
        assert found.startswith("we_")
        assert len(found) == len("we_") + 24
        assert not contains_card_number(found)
