"""The one rule for the domain's JSON forms (domain/json_form.py): keys are the
dataclass fields, values follow their types, reading back is the inverse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict
from domain.json_form import codec, from_json, json_keys, to_json
from domain.quote import Credit, Quote, QuoteLine
from tests.domain.builders import CATALOG, T0, Plan, organization_with, yearly_request


@dataclass(frozen=True)
class Inner:
    day: date
    note: str | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    count: int
    flag: bool
    at: datetime
    inners: tuple[Inner, ...]
    pairs: tuple[tuple[str, int], ...]
    extra: dict[str, Any]
    maybe: Inner | None = None
    tags: tuple[str, ...] = ()
    shouted: str = field(default="", metadata=codec(str.upper, str.lower))


def test_a_dataclass_is_an_object_of_its_fields_in_order_with_values_by_type() -> None:
    value = Outer(
        name="n",
        count=3,
        flag=True,
        at=datetime(2026, 11, 26, 9, tzinfo=UTC),
        inners=(Inner(date(2026, 3, 6)), Inner(date(2027, 3, 6), "x")),
        pairs=(("storage-10gb", 2),),
        extra={"k": [1, 2]},
        shouted="abc",
    )
    form = to_json(value)
    assert form == {
        "name": "n",
        "count": 3,
        "flag": True,
        "at": "2026-11-26T09:00:00+00:00",
        "inners": [{"day": "2026-03-06", "note": None}, {"day": "2027-03-06", "note": "x"}],
        "pairs": [["storage-10gb", 2]],
        "extra": {"k": [1, 2]},
        "maybe": None,
        "tags": [],
        "shouted": "ABC",
    }
    assert list(form) == list(json_keys(Outer))
    assert from_json(Outer, form) == value


def test_a_missing_key_takes_the_default_and_a_missing_required_key_is_named() -> None:
    form = to_json(Inner(date(2026, 3, 6), "x"))
    del form["note"]
    assert from_json(Inner, form) == Inner(date(2026, 3, 6))
    with pytest.raises(KeyError, match="'day'"):
        from_json(Inner, {"note": "x"})


def test_a_type_without_a_json_form_is_refused() -> None:
    @dataclass
    class Odd:
        value: float

    with pytest.raises(TypeError, match="unsupported type"):
        to_json(Odd(1.0))


def test_the_quote_json_form_is_exactly_its_fields() -> None:
    org = organization_with(Plan("crm", super_admin="u-alice"))
    quote = org.quote(yearly_request(10, storage_10gb=2), at=T0, catalog=CATALOG)
    form = quote.to_dict()
    assert list(form) == list(json_keys(Quote))
    assert list(form["lines"][0]) == list(json_keys(QuoteLine))
    assert list(form["credits"][0]) == list(json_keys(Credit))
    assert Quote.from_dict(form) == quote


def test_the_facts_survive_their_json_form_keyed_by_their_fields() -> None:
    org = organization_with(Plan("crm", super_admin="u-alice"), Plan("desk", super_admin="u-alice"))
    org.start_trial(by="u-alice", at=T0, catalog=CATALOG)
    facts: OrganizationFacts = org.facts
    assert facts_from_dict(facts_to_dict(facts)) == facts
    assert set(facts_to_dict(facts)) == set(json_keys(OrganizationFacts))
