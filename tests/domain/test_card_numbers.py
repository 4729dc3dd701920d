"""The one card-number detector, and the domain refusing to record a card number."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.card_numbers import (
    CARD_DATA_CODE,
    MASK,
    CardDataNotAccepted,
    card_number_locations,
    contains_card_number,
    luhn_valid,
    mask_card_numbers,
)
from domain.organization import Organization
from tests.card_spellings import CARD_NUMBER, OTHER_CARD_NUMBER, holds_card_number, spellings
from tests.domain.builders import (
    CATALOG,
    CONTACT,
    ORG_ID,
    T0,
    Plan,
    organization_with,
    register,
    yearly_request,
)
from tests.hostile_values import CARD_TEXT, HostileText

SPELLINGS = spellings()


@pytest.mark.parametrize("label", SPELLINGS)
def test_a_card_number_is_found_however_its_digits_are_separated(label: str) -> None:
    assert contains_card_number(SPELLINGS[label])


@pytest.mark.parametrize("label", SPELLINGS)
def test_a_masked_card_number_leaves_no_digits_of_it(label: str) -> None:
    masked = mask_card_numbers(f"before {SPELLINGS[label]} after")

    assert MASK in masked
    assert not holds_card_number(masked.encode())
    assert masked.startswith("before ")
    assert masked.endswith(" after")


@given(
    separators=st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Cs")
            ),
            min_size=1,
            max_size=4,
        ),
        min_size=15,
        max_size=15,
    )
)
def test_any_run_of_non_alphanumeric_characters_between_the_digits_is_a_separator(
    separators: list[str],
) -> None:
    pairs = zip(separators, CARD_NUMBER[1:], strict=True)
    spelled = CARD_NUMBER[0] + "".join(separator + digit for separator, digit in pairs)

    assert contains_card_number(spelled)
    assert mask_card_numbers(spelled) == MASK


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails the Luhn check
        "424242424242",  # 12 digits: too short
        "41111111111111111111",  # 20 digits in one group: one long number
        "7d0c8f2e-1b2a-4c3d-9e8f-123456789012",
        "11111111-1111-4111-8111-111111111111",  # a UUID of digits is an identifier
        "+81 3 1234 5678",
        "2026-11-26T09:00:00+00:00",
        "4111 1111 x 1111 1111",  # a letter ends the sequence
        "Acme KK",
        "",
    ],
)
def test_text_that_is_not_a_card_number_passes(text: str) -> None:
    assert not contains_card_number(text)
    assert mask_card_numbers(text) == text


def test_a_card_number_next_to_other_digit_groups_is_still_found() -> None:
    assert contains_card_number(f"7 {CARD_NUMBER} 12/28 123")
    assert mask_card_numbers(f"n {OTHER_CARD_NUMBER}, then {CARD_NUMBER}.") == (
        f"n {MASK}, then {MASK}."
    )


def test_luhn_counts_digits_of_every_script() -> None:
    assert luhn_valid(CARD_NUMBER)
    assert luhn_valid("４１１１１１１１１１１１１１１１")
    assert not luhn_valid("4111111111111112")


def test_a_hostile_text_of_thousands_of_digit_groups_is_scanned() -> None:
    assert not contains_card_number("1 " * 30_000 + "x")


def test_locations_name_where_never_what() -> None:
    value: dict[str, Any] = {
        "name": f"Acme {CARD_NUMBER}",
        "admins": ["u-1", SPELLINGS["dots"]],
        "contact": {"phone": "+81 3 1234 5678", SPELLINGS["spaces"]: "key"},
        "total": int(CARD_NUMBER),
        "ok": True,
    }

    locations = list(card_number_locations(value))

    assert locations == ["/name", "/admins/1", "/contact/#1", "/total"]


def _refusal(act: Any) -> CardDataNotAccepted:
    with pytest.raises(CardDataNotAccepted) as refused:
        act()
    assert refused.value.code == CARD_DATA_CODE
    assert not holds_card_number(repr(refused.value.details).encode())
    return refused.value


@pytest.mark.parametrize("field", ["name", "owner_user_id"])
def test_an_organization_cannot_be_registered_with_a_card_number(field: str) -> None:
    fields = {"name": "Acme", "owner_user_id": "u-owner", field: SPELLINGS["nbsp"]}

    refusal = _refusal(
        lambda: Organization.register(organization_id=ORG_ID, country="JP", at=T0, **fields)
    )

    assert refusal.details == {"locations": [field]}


def test_no_user_id_with_a_card_number_is_recorded_as_admin_or_actor() -> None:
    org = register()
    plan: dict[str, Any] = {
        "service": "crm",
        "seats": 1,
        "billing_period": "yearly",
        "amount_paid": 1,
        "period_start": T0.date(),
        "period_end": T0.date().replace(year=2027),
        "at": T0,
        "catalog": CATALOG,
    }
    card = SPELLINGS["underscore"]

    assert _refusal(
        lambda: org.record_standalone_subscription(**plan, super_admin=card, admins=[], by=None)
    ).details == {"locations": ["super_admin"]}
    assert _refusal(
        lambda: org.record_standalone_subscription(
            **plan, super_admin="u-a", admins=["u-b", card], by=None
        )
    ).details == {"locations": ["admins/1"]}
    assert _refusal(
        lambda: org.change_service_admins(
            service="crm",
            super_admin="u-a",
            admins=[],
            by=card,
            by_operator=True,
            at=T0,
            catalog=CATALOG,
        )
    ).details == {"locations": ["by"]}
    assert _refusal(
        lambda: org.record_standalone_subscription(
            **plan, super_admin="u-a", admins=[CARD_NUMBER[:8], CARD_NUMBER[8:]], by=None
        )
    ).details == {"locations": ["admins"]}
    _refusal(lambda: org.start_trial(by=card, at=T0, catalog=CATALOG))
    assert org.version == 1  # nothing was recorded


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"idempotency_key": SPELLINGS["dots"]}, "idempotency_key"),
        ({"by": SPELLINGS["slash"]}, "by"),
        (
            {"billing_contact": {**CONTACT, "company_name": SPELLINGS["spaced dash"]}},
            "billing_contact/company_name",
        ),
    ],
)
def test_a_checkout_cannot_record_a_card_number(changes: dict[str, Any], location: str) -> None:
    org = organization_with(Plan("crm", "u-alice"))
    request = yearly_request()
    checkout: dict[str, Any] = {
        "checkout_id": f"chk_{uuid.uuid4().hex}",
        "by": "u-alice",
        "request": request,
        "billing_contact": CONTACT,
        "expected_total": org.quote(request, at=T0, catalog=CATALOG).total,
        "idempotency_key": "k-1",
        "at": T0,
        "catalog": CATALOG,
        **changes,
    }
    version = org.version

    refusal = _refusal(lambda: org.begin_checkout(**checkout))

    assert refusal.details == {"locations": [location]}
    assert org.version == version


@pytest.mark.parametrize("hostile", CARD_TEXT, ids=lambda h: h.name)
def test_every_card_number_of_the_hostile_corpus_is_refused_by_the_domain(
    hostile: HostileText,
) -> None:
    with pytest.raises(CardDataNotAccepted) as refused:
        Organization.register(
            organization_id=ORG_ID, name=hostile.text, country="JP", owner_user_id="u", at=T0
        )

    assert refused.value.code == hostile.refused_with
