"""The per-organization hash chain: every stored event's link can be recomputed
from the stored bytes, and changing any byte of the data breaks it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from application.service import SuiteSubscriptions
from domain.tamper_evidence import GENESIS_LINK, chain_link, event_data
from tests.domain.builders import ORG_ID
from tests.domain.event_story import memory_app, record_every_event_type, stored_events


@pytest.fixture(scope="module")
def story() -> Iterator[tuple[SuiteSubscriptions, list[StoredEvent]]]:
    app = memory_app()
    org = record_every_event_type(app)
    yield app, stored_events(app, org)
    app.close()


def recomputed_link(app: SuiteSubscriptions, previous: str, stored: StoredEvent) -> str:
    """The link as an auditor recomputes it: the stored state, not upcast."""
    state: dict[str, Any] = app.mapper.transcoder.decode(stored.state)
    data = {k: v for k, v in event_data(state).items() if k != "class_version"}
    return chain_link(
        previous,
        str(stored.originator_id),
        stored.originator_version,
        stored.topic.rpartition(":")[2],
        state["timestamp"],
        data,
    )


def stored_link(app: SuiteSubscriptions, stored: StoredEvent) -> str:
    link: str = app.mapper.transcoder.decode(stored.state)["chain"]
    return link


def test_every_link_of_the_stream_verifies_from_the_stored_bytes(
    story: tuple[SuiteSubscriptions, list[StoredEvent]],
) -> None:
    app, events = story
    previous = GENESIS_LINK
    for stored in events:
        link = stored_link(app, stored)
        assert recomputed_link(app, previous, stored) == link, stored.originator_version
        previous = link
    assert len(events) == 21


def test_the_last_link_is_the_facts_chain_head(
    story: tuple[SuiteSubscriptions, list[StoredEvent]],
) -> None:
    app, events = story
    assert app.facts(ORG_ID).chain_head == stored_link(app, events[-1])


@pytest.mark.parametrize(
    ("version", "old", "new"),
    [
        (1, b'"Acme"', b'"Acmf"'),
        (2, b'"amount_paid":120000', b'"amount_paid":120001'),
        (5, b'"by":"u-alice"', b'"by":"u-alicf"'),
        (19, b'"total":780439', b'"total":780430'),
        (19, b"2026-12-29T09:00:00+00:00", b"2026-12-29T09:00:01+00:00"),
    ],
    ids=["a name", "an amount paid", "the acting user", "a total", "the business time"],
)
def test_changing_one_byte_of_a_stored_event_breaks_its_link(
    story: tuple[SuiteSubscriptions, list[StoredEvent]], version: int, old: bytes, new: bytes
) -> None:
    app, events = story
    original = events[version - 1]
    assert old in original.state
    tampered = StoredEvent(
        originator_id=original.originator_id,
        originator_version=original.originator_version,
        topic=original.topic,
        state=original.state.replace(old, new, 1),
    )
    previous = GENESIS_LINK if version == 1 else stored_link(app, events[version - 2])
    assert recomputed_link(app, previous, original) == stored_link(app, original)
    assert recomputed_link(app, previous, tampered) != stored_link(app, tampered)


def test_removing_an_event_breaks_the_link_of_the_next_one(
    story: tuple[SuiteSubscriptions, list[StoredEvent]],
) -> None:
    app, events = story
    before_gap, after_gap = events[2], events[4]  # version 4 removed
    assert recomputed_link(app, stored_link(app, before_gap), after_gap) != stored_link(
        app, after_gap
    )


def test_the_same_event_in_another_organization_has_another_link(
    story: tuple[SuiteSubscriptions, list[StoredEvent]],
) -> None:
    app, events = story
    moved = StoredEvent(UUID(int=99), 1, events[0].topic, events[0].state)
    assert recomputed_link(app, GENESIS_LINK, moved) != stored_link(app, events[0])
