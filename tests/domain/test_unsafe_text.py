"""The domain refuses text the log cannot hold, whatever path a command came by."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidRequest
from domain.organization import Organization
from domain.text import SAFE_TEXT_PATTERN, text_problem
from tests.domain.builders import CATALOG, CONTACT, ORG_ID, T0, Plan, organization_with, record
from tests.domain.builders import register as registered
from tests.hostile_values import CONTROL_TEXT, HostileText

EVERY_REFUSED_CODE_POINT = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0xD800, 0xDBFF, 0xDC00, 0xDFFF]


@pytest.mark.parametrize("code_point", EVERY_REFUSED_CODE_POINT, ids=hex)
def test_every_control_character_and_lone_surrogate_is_refused(code_point: int) -> None:
    assert text_problem(f"u-{chr(code_point)}") is not None


@pytest.mark.parametrize("text", ["u-alice", "株式会社スイート", "Zoë & Co. — 東京", "😀", " "])
def test_ordinary_text_is_accepted(text: str) -> None:
    assert text_problem(text) is None


def test_the_openapi_pattern_states_the_same_rule_for_every_control_character() -> None:
    import re

    for code_point in EVERY_REFUSED_CODE_POINT:
        refused = re.fullmatch(SAFE_TEXT_PATTERN, f"a{chr(code_point)}") is None
        assert refused == (not 0xD800 <= code_point <= 0xDFFF)  # surrogates: in words
    assert re.fullmatch(SAFE_TEXT_PATTERN, "株式会社 Acme") is not None


def _refused_field(error: pytest.ExceptionInfo[InvalidRequest]) -> set[str]:
    assert error.value.code == "validation_failed"
    return set(error.value.details["fields"])


@pytest.mark.parametrize("hostile", CONTROL_TEXT, ids=lambda h: h.name)
@pytest.mark.parametrize("field", ["name", "owner_user_id", "country"])
def test_registration_refuses_hostile_text(hostile: HostileText, field: str) -> None:
    values = {"name": "Acme", "country": "JP", "owner_user_id": "u-owner"}
    values[field] = hostile.text

    with pytest.raises(InvalidRequest) as error:
        Organization.register(organization_id=ORG_ID, at=T0, **values)

    assert field in _refused_field(error)


@pytest.mark.parametrize("hostile", CONTROL_TEXT, ids=lambda h: h.name)
def test_a_standalone_plan_refuses_a_hostile_admin(hostile: HostileText) -> None:
    org = registered()

    with pytest.raises(InvalidRequest) as error:
        record(org, Plan("crm", super_admin="u-alice", admins=("u-bob", hostile.text)))

    assert _refused_field(error) == {"admins[1]"}
    assert org.version == 1  # nothing was recorded


@pytest.mark.parametrize("hostile", CONTROL_TEXT, ids=lambda h: h.name)
def test_changing_admins_refuses_a_hostile_super_admin(hostile: HostileText) -> None:
    org = organization_with(Plan("crm", super_admin="u-alice"))

    with pytest.raises(InvalidRequest) as error:
        org.change_service_admins(
            service="crm",
            super_admin=hostile.text,
            admins=[],
            by="ops-1",
            by_operator=True,
            at=T0,
            catalog=CATALOG,
        )

    assert _refused_field(error) == {"super_admin"}


def test_the_acting_user_is_checked_too() -> None:
    org = organization_with(Plan("crm", super_admin="u-alice"))

    with pytest.raises(InvalidRequest) as error:
        org.change_service_admins(
            service="crm",
            super_admin="u-bob",
            admins=[],
            by="ops\u0000",
            by_operator=True,
            at=T0,
            catalog=CATALOG,
        )

    assert _refused_field(error) == {"by"}


def test_a_checkout_refuses_a_hostile_billing_contact_and_key() -> None:
    from tests.domain.builders import yearly_request

    org = registered()
    quote = org.quote(yearly_request(), at=T0, catalog=CATALOG)

    with pytest.raises(InvalidRequest) as error:
        org.begin_checkout(
            checkout_id="co_1",
            by="u-owner",
            request=yearly_request(),
            billing_contact={**CONTACT, "company_name": "Acme\ud800"},
            expected_total=quote.total,
            idempotency_key="key\u0085",
            at=T0,
            catalog=CATALOG,
        )

    assert _refused_field(error) == {"billing_contact.company_name", "idempotency_key"}
    assert org.facts.pending_checkout is None


@pytest.mark.parametrize("code_point", EVERY_REFUSED_CODE_POINT, ids=hex)
def test_the_first_look_at_stored_json_never_misses_a_refused_character(code_point: int) -> None:
    import json

    import orjson

    from domain.text import may_hold_unsafe_text

    text = f"a{chr(code_point)}"
    encodings = [json.dumps(text).encode()]
    if not 0xD800 <= code_point <= 0xDFFF:
        encodings += [json.dumps(text, ensure_ascii=False).encode(), orjson.dumps(text)]
    else:
        encodings.append(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    assert all(may_hold_unsafe_text(encoded) for encoded in encodings)


def test_the_first_look_passes_sound_text_quickly() -> None:
    import json

    from domain.text import may_hold_unsafe_text

    assert not may_hold_unsafe_text(json.dumps({"name": "Zoë — 東京"}, ensure_ascii=False).encode())


#: Any code point, lone surrogates included, and the refused ones often.
_ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=())
    | st.sampled_from([chr(c) for c in EVERY_REFUSED_CODE_POINT]),
    max_size=6,
)
_NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | _ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(_ANY_TEXT, children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_NESTED)
def test_the_fast_refusal_agrees_with_the_walk_on_any_value(value: object) -> None:
    """refuse_unsafe_text's orjson first look (benchmark renewal_sweep) never lets
    through what the walk refuses, and refuses naming the walk's fields."""
    from domain.text import refuse_unsafe_text, unsafe_text_locations

    walked: dict[str, list[str]] = {}
    for location, problem in unsafe_text_locations(value, ""):
        walked.setdefault(location, []).append(problem)
    if walked:
        with pytest.raises(InvalidRequest) as refused:
            refuse_unsafe_text(value)
        assert refused.value.details["fields"] == walked
    else:
        refuse_unsafe_text(value)
