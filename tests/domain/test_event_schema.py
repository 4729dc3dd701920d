"""The stored form of every event type is pinned by a golden file.

``tests/domain/golden/<EventType>.v<class_version>.json`` holds the topic and
the stored state (the JSON the store keeps) of a representative event. A change
to an event's shape makes this test fail until it comes with a
``class_version`` bump, an ``upcast_v<n>_v<n+1>`` static method and a new golden
file; the old golden file stays and must keep loading. See docs/events.md.

``SUITE_WRITE_GOLDEN=1`` writes golden files that do not exist yet; it never
overwrites one, so an accidental shape change cannot bless itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from domain.events import EVENT_CLASSES, OrganizationEvent
from tests.domain.builders import ORG_ID
from tests.domain.event_story import (
    memory_app,
    record_contract_life,
    record_every_event_type,
    record_plan_changes,
    record_reminders,
    stored_events,
)

GOLDEN = Path(__file__).with_name("golden")
WRITE_MISSING = os.environ.get("SUITE_WRITE_GOLDEN") == "1"
EVENT_NAMES = [cls.__name__ for cls in EVENT_CLASSES]


def class_version(cls: type[Any]) -> int:
    return int(getattr(cls, "class_version", 1))


def golden_path(cls: type[Any]) -> Path:
    return GOLDEN / f"{cls.__name__}.v{class_version(cls)}.json"


@pytest.fixture(scope="module")
def first_stored_of_each_type() -> dict[str, StoredEvent]:
    app = memory_app()
    orgs = [
        record_every_event_type(app),
        record_reminders(app),
        record_contract_life(app),
        record_plan_changes(app),
    ]
    found: dict[str, StoredEvent] = {}
    for stored in (stored for org in orgs for stored in stored_events(app, org)):
        found.setdefault(stored.topic.rpartition(":")[2], stored)
    app.close()
    return found


def stored_form(stored: StoredEvent) -> dict[str, Any]:
    cls_name = stored.topic.rpartition(":")[2]
    cls = next(c for c in EVENT_CLASSES if c.__name__ == cls_name)
    return {
        "topic": stored.topic,
        "class_version": class_version(cls),
        "state": json.loads(stored.state),
    }


def test_the_story_records_every_event_type(
    first_stored_of_each_type: dict[str, StoredEvent],
) -> None:
    assert sorted(first_stored_of_each_type) == sorted(EVENT_NAMES)
    assert len(EVENT_NAMES) == 25


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=EVENT_NAMES)
def test_the_stored_form_of_each_event_type_matches_its_golden_file(
    cls: type[OrganizationEvent], first_stored_of_each_type: dict[str, StoredEvent]
) -> None:
    actual = stored_form(first_stored_of_each_type[cls.__name__])
    path = golden_path(cls)
    if not path.exists() and WRITE_MISSING:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), (
        f"no golden file {path.name}: run with SUITE_WRITE_GOLDEN=1 to write it, "
        "review it and commit it (docs/events.md)"
    )
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected, (
        f"the stored form of {cls.__name__} changed. Stored events are never edited: "
        f"bump {cls.__name__}.class_version, add upcast_v{class_version(cls)}_v"
        f"{class_version(cls) + 1}, and write a new golden file (docs/events.md)"
    )


GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_every_golden_file_of_any_version_still_loads_with_todays_code(path: Path) -> None:
    golden = json.loads(path.read_text(encoding="utf-8"))
    app = memory_app()
    stored = StoredEvent(
        originator_id=ORG_ID,
        originator_version=1,
        topic=golden["topic"],
        state=json.dumps(golden["state"]).encode("utf-8"),
    )
    event = app.mapper.to_domain_event(stored)
    app.close()

    assert isinstance(event, OrganizationEvent)
    assert event.timestamp.tzinfo is not None
    fields = [
        name
        for klass in reversed(type(event).__mro__)
        for name in getattr(klass, "__annotations__", {})
        if klass.__module__ == "domain.events"
    ]
    missing = [name for name in fields if name not in event.__dict__]
    assert not missing, f"{path.name} loads without {missing}: an upcaster is missing"


def test_there_is_no_golden_file_for_a_version_ahead_of_the_code() -> None:
    current = {cls.__name__: class_version(cls) for cls in EVENT_CLASSES}
    for path in GOLDEN_FILES:
        name, _, version = path.stem.rpartition(".v")
        assert name in current, f"{path.name} names no event class"
        assert int(version) <= current[name], f"{path.name} is ahead of {name}.class_version"


# -- the procedure, shown on a test-only aggregate -------------------------------------------


class Ledger(Aggregate):
    """A stand-in aggregate: production events are never changed to demonstrate."""


class NoteWritten(Aggregate.Event):
    """Version 2 added ``language``; stored version-1 events had only ``text``."""

    class_version: ClassVar[int] = 2
    text: str
    language: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["language"] = "en"


def stored_v1_note() -> StoredEvent:
    """A ``NoteWritten`` as version 1 of the code stored it (no class_version key)."""
    v1_state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-11-26T09:00:00+00:00"},
        "text": "hello",
    }
    return StoredEvent(
        originator_id=UUID(int=7),
        originator_version=2,
        topic=f"{__name__}:NoteWritten",
        state=json.dumps(v1_state).encode("utf-8"),
    )


def test_an_upcaster_loads_an_event_stored_in_the_old_shape() -> None:
    app = memory_app()
    event = app.mapper.to_domain_event(stored_v1_note())
    app.close()
    assert isinstance(event, NoteWritten)
    assert (event.text, event.language) == ("hello", "en")


def test_an_event_of_a_bumped_class_is_stored_with_its_class_version() -> None:
    app = memory_app()
    event = app.mapper.to_domain_event(stored_v1_note())
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    reloaded = app.mapper.to_domain_event(stored)
    app.close()
    assert state["class_version"] == 2
    assert state["language"] == "en"
    assert isinstance(reloaded, NoteWritten)
    assert reloaded.language == "en"
