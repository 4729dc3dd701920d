"""The application's transcoder stores what the library's stores and reads it back
to the same values (application/transcoding.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from application.service import OrganizationFactsAsDict
from application.transcoding import OrjsonDecodingTranscoder
from tests.domain.event_story import (
    memory_app,
    record_contract_life,
    record_every_event_type,
    record_plan_changes,
    record_reminders,
    stored_events,
)


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), OrganizationFactsAsDict()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = registered(JSONTranscoder())
ORJSON = registered(OrjsonDecodingTranscoder())


def same(left: Any, right: Any) -> bool:
    """Equal values of equal types all the way down (``1``, ``1.0`` and ``True`` differ)."""
    return repr(left) == repr(right)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.just(UTC) | st.just(timezone(timedelta(hours=9))))
    | st.uuids()
    | st.decimals(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_what_the_library_encodes_decodes_to_the_same_values(value: Any) -> None:
    stored = LIBRARY.encode(value)
    assert ORJSON.encode(value) == stored
    assert same(ORJSON.decode(stored), LIBRARY.decode(stored))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values, st.booleans())
def test_any_json_text_decodes_as_the_library_decodes_it(value: Any, ascii_only: bool) -> None:
    # ensure_ascii writes lone surrogates as escapes, and NaN as NaN: orjson refuses both.
    text = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        expected = LIBRARY.decode(text)
    except ValueError as error:
        with pytest.raises(type(error)):
            ORJSON.decode(text)
    else:
        assert same(ORJSON.decode(text), expected)


@pytest.mark.parametrize(
    "text",
    [
        b'{"n": 123456789012345678901234567890}',
        b'{"n": -9223372036854775809}',
        b'{"n": 18446744073709551615}',
        b'{"x": 1e400, "y": NaN, "z": -Infinity}',
        b'{"s": "\\ud800"}',
        b'{"a": 1, "a": 2}',
        b'{"_type_": "uuid_hex", "_data_": "e3c0a6a4f2a54a7bb0d6a0e1f8f0b6a1", "more": 1}',
        b'{"_type_": "datetime_iso"}',
        b'[{"_type_": "decimal_str", "_data_": "1.10"}, [{"_type_": "uuid_hex",'
        b' "_data_": "e3c0a6a4f2a54a7bb0d6a0e1f8f0b6a1"}]]',
        b'{"_type_": {"_type_": "decimal_str", "_data_": "1"}, "_data_": 2}',
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" * 13
        + b"]" * 1092,
    ],
    ids=[
        "integer beyond 64 bits",
        "integer below -2**63",
        "largest 64-bit integer",
        "non-finite numbers",
        "lone surrogate",
        "repeated key",
        "three keys are no transcoded value",
        "a type without data",
        "nested transcoded values",
        "a transcoded value as a type name",
        "nesting deeper than orjson reads",
    ],
)
def test_the_corners_where_orjson_differs_decode_as_the_library_decodes(text: bytes) -> None:
    try:
        expected = LIBRARY.decode(text)
    except (RecursionError, TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            ORJSON.decode(text)
    else:
        assert same(ORJSON.decode(text), expected)


def test_a_name_no_transcoding_has_is_refused_as_the_library_refuses_it() -> None:
    text = b'{"at": {"_type_": "no_such_type", "_data_": "x"}}'
    with pytest.raises(TranscodingNotRegisteredError) as library:
        LIBRARY.decode(text)
    with pytest.raises(TranscodingNotRegisteredError) as ours:
        ORJSON.decode(text)
    assert str(ours.value) == str(library.value)


def test_every_stored_event_of_the_story_is_stored_and_read_as_the_library_does() -> None:
    app = memory_app()
    assert isinstance(app.mapper.transcoder, OrjsonDecodingTranscoder)
    organizations = [
        record_every_event_type(app),
        record_reminders(app),
        record_contract_life(app),
        record_plan_changes(app),
    ]
    for organization in organizations:
        for stored in stored_events(app, organization):
            state = LIBRARY.decode(stored.state)
            assert same(app.mapper.transcoder.decode(stored.state), state)
            assert LIBRARY.encode(state) == stored.state
    snapshot = app.snapshots
    assert snapshot is not None
    for organization in organizations:
        for stored in snapshot.recorder.select_events(organization):
            assert same(ORJSON.decode(stored.state), LIBRARY.decode(stored.state))
    app.close()


def test_an_event_stored_by_the_library_loads_the_same_aggregate() -> None:
    app = memory_app()
    organization = record_every_event_type(app)
    ours = app.repository.get(organization)
    app.mapper.transcoder = LIBRARY
    library = app.repository.get(organization, version=ours.version)
    assert ours.facts == library.facts
    assert ours.version == library.version
    assert isinstance(library.modified_on, datetime)
    assert ours.id == library.id == UUID(str(organization))
    app.close()
