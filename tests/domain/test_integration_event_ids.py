"""Integration event ids are uuid5's digits (computed without uuid.UUID objects)."""

from __future__ import annotations

from uuid import UUID, uuid5

from hypothesis import given
from hypothesis import strategies as st

from domain.integration_events import EVENT_TYPES, integration_event_id

NAMESPACE = UUID("5b0e7f3c-12a4-4c6e-9d52-7d0c5a1e0012")


def test_the_ids_of_the_first_positions_of_every_type_are_uuid5s() -> None:
    for position in range(2000):
        for event_type in EVENT_TYPES:
            expected = f"evt_{uuid5(NAMESPACE, f'{position}/{event_type}').hex}"
            assert integration_event_id(position, event_type) == expected


@given(st.integers(min_value=0, max_value=2**63 - 1), st.text())
def test_any_position_and_name_gives_uuid5s_digits(position: int, name: str) -> None:
    expected = f"evt_{uuid5(NAMESPACE, f'{position}/{name}').hex}"
    assert integration_event_id(position, name) == expected
