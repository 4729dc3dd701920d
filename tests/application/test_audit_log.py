"""The audit tool's application side: paging, filters, times, digest (every store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from application.audit import LogFilter, iterate_log, parse_time, replay
from application.audit_verification import (
    ChainDigest,
    chain_digest,
    stored_at_version,
    verify_log,
)
from application.service import SuiteSubscriptions
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.errors import InvalidRequest
from domain.facts import facts_to_dict
from tests.interface.audit_story import tell_story


def test_the_log_reads_the_same_whatever_the_page_size(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    tell_story(app, clock)

    whole = [e.to_dict() for e in iterate_log(app)]
    paged = [e.to_dict() for e in iterate_log(app, page_size=2)]

    assert paged == whole
    assert [e["position"] for e in whole] == sorted({e["position"] for e in whole})
    assert len(whole) == app.recorder.max_notification_id()


def test_filters_by_type_and_organization_page_too(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    story = tell_story(app, clock)

    extended = list(iterate_log(app, LogFilter(event_type="TrialExtended"), page_size=1))
    globex = list(iterate_log(app, LogFilter(organization_id=story.globex), page_size=2))

    assert [(e.organization_id, e.version) for e in extended] == [(str(story.acme), 7)]
    assert [e.version for e in globex] == list(range(1, len(globex) + 1))
    assert all(e.organization_id == str(story.globex) for e in globex)


def test_progress_reports_the_position_reached_after_each_page(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    tell_story(app, clock)
    reached: list[int] = []

    report = verify_log(app, page_size=5, progress=reached.append)

    assert report.ok, report.faults
    assert reached == sorted(reached)
    assert reached[-1] == app.recorder.max_notification_id()
    assert len(reached) >= 4


def test_verification_and_digest_do_not_depend_on_the_page_size(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    story = tell_story(app, clock)

    small = chain_digest(app, page_size=3)
    large = chain_digest(app)

    assert small.to_dict() == large.to_dict()
    heads = {h.organization_id: h for h in large.heads}
    assert heads[str(story.acme)].link == app.facts(story.acme).chain_head
    assert verify_log(app, saved_digest=small, page_size=3).ok
    assert ChainDigest.from_dict(large.to_dict()).digest == large.digest


def test_replay_version_and_as_of_cannot_be_combined(
    app: SuiteSubscriptions, clock: ManualClock, catalog: Catalog
) -> None:
    story = tell_story(app, clock)

    with pytest.raises(InvalidRequest):
        replay(app, story.acme, catalog, as_of=story.upgraded_at, version=3)
    with pytest.raises(InvalidRequest):
        replay(app, story.acme, catalog, version=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T09:30:00Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T18:30:00+09:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_times_on_the_command_line_are_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


def test_a_malformed_time_or_unknown_event_type_is_refused() -> None:
    with pytest.raises(InvalidRequest) as time_refused:
        parse_time("yesterday")
    assert time_refused.value.code == "invalid_time"
    with pytest.raises(InvalidRequest) as type_refused:
        LogFilter(event_type="TrialBegun")
    assert type_refused.value.code == "unknown_event_type"


def test_replay_at_every_version_equals_the_aggregate_at_that_version(
    app: SuiteSubscriptions, clock: ManualClock, catalog: Catalog
) -> None:
    story = tell_story(app, clock)

    for version in range(1, story.acme_versions + 1):
        replayed = replay(app, story.acme, catalog, version=version)
        organization = app.repository.get(story.acme, version=version)
        assert facts_to_dict(replayed.facts) == facts_to_dict(organization.facts)
        assert replayed.facts.chain_head == organization.facts.chain_head


@pytest.mark.parametrize(
    ("stored", "at_version_3"),
    [
        (b'{"a":1,"class_version":3}', True),
        (b'{"class_version":3}', True),
        (b'{"class_version":2,"class_version":3}', True),
        (b'{"class_version":3,"class_version":2}', False),
        (b'{"a":1,"class_version":2}', False),
        (b'{"a":1,"class_version":33}', False),
        (b'{"a":1}', False),
        (b'{"a":{"class_version":3}}', False),
        (b'{"a\\"class_version":3}', False),
        (b'{"a":"\\"class_version\\":3}"}', False),
    ],
    ids=[
        "last member",
        "only member",
        "the last of repeated keys",
        "an earlier repeated key",
        "another version",
        "a longer number",
        "no version (1)",
        "a nested object's key",
        "a longer key with an escaped quote",
        "inside a string",
    ],
)
def test_the_stored_version_look_agrees_with_a_full_parse(
    stored: bytes, at_version_3: bool
) -> None:
    """The audit's look at the stored bytes (benchmark audit_verify) says "stored
    at version 3" only where the top-level key the decoders keep says so."""
    assert stored_at_version(stored, 3) is at_version_3
    if at_version_3:
        assert orjson.loads(stored)["class_version"] == 3
