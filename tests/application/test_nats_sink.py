"""The NATS JetStream sink against the local server (127.0.0.1:4222): every
envelope once in the stream, and a republish after a crash dropped by
JetStream's duplicate window."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig

from application.bootstrap import Services, build_services
from application.projections.read_model import ViewSettings
from application.webhooks.nats_sink import NatsSettings, NatsSink, subject
from domain.catalog import Catalog
from domain.clock import ManualClock
from tests.application.helpers import register

NATS_URL = os.environ.get("SUITE_TEST_NATS_URL", "nats://127.0.0.1:4222")
SETTINGS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)


@pytest.fixture
def services(tmp_path: Any, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(
        f"sqlite:///{tmp_path}/nats.sqlite3", clock=clock, catalog=catalog, view_settings=SETTINGS
    )
    yield built
    built.close()


class CrashAfterPublishing(NatsSink):
    """A sink that dies after JetStream acknowledged, before it tracked its position."""

    def _track(self, position: int) -> None:
        raise RuntimeError("crashed before tracking")


async def _stream_story(services: Services, stream: str, org: str) -> dict[str, Any]:
    try:
        connection = await nats.connect(NATS_URL, connect_timeout=2)
    except Exception as error:
        if os.environ.get("SUITE_REQUIRE_NATS") == "1":
            pytest.fail(f"no NATS server at {NATS_URL}: {error}")
        pytest.skip(f"no NATS server at {NATS_URL}: {error}")
    js = connection.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"suite.events.{org}.>"]))
    try:
        settings = NatsSettings(NATS_URL, stream)
        crashing = CrashAfterPublishing(services.tables, settings)
        with pytest.raises(RuntimeError, match="crashed"):
            await crashing.publish_pending(js)
        after_crash = (await js.stream_info(stream)).state.messages
        restarted = NatsSink(services.tables, settings)
        republished_new = await restarted.publish_pending(js)
        info = await js.stream_info(stream)
        subscription = await js.subscribe(f"suite.events.{org}.>", stream=stream)
        first = await subscription.next_msg(timeout=2)
        await subscription.unsubscribe()
        return {
            "after_crash": after_crash,
            "after_restart": info.state.messages,
            "republished_new": republished_new,
            "position": restarted.position(),
            "first_subject": first.subject,
            "first_id": first.headers.get("Nats-Msg-Id") if first.headers else None,
        }
    finally:
        await js.delete_stream(stream)
        await connection.close()


def test_a_republish_after_a_crash_is_dropped_by_the_duplicate_window(
    services: Services,
) -> None:
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    services.webhooks.integration.catch_up()
    envelopes = services.webhooks.integration.page(after=0, types=(), limit=100)["events"]
    stream = f"SUITE_TEST_{secrets.token_hex(4).upper()}"

    seen = asyncio.run(_stream_story(services, stream, str(org)))

    assert seen["after_crash"] == len(envelopes) == 2
    assert seen["republished_new"] == 0  # every republished one was a duplicate
    assert seen["after_restart"] == len(envelopes)
    assert seen["position"] == envelopes[-1]["position"]
    assert seen["first_subject"] == subject(str(org), "trial.started")
    assert seen["first_id"] == envelopes[0]["id"]
