"""``suitesub audit`` through click's CliRunner, on every store ``store_url`` yields.

The tamper-evidence cases edit a SQLite file behind the service's back, the
way an attacker with database access would, and expect the named fault.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner, Result
from rich.cells import cell_len

from application.bootstrap import Services, build_services
from application.projections.rows import OrganizationRow
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.tamper_evidence import GENESIS_LINK, chain_link, event_data
from interface.cli import audit_commands, main
from tests.conftest import empty_postgres_tables
from tests.interface.audit_story import DAY, HOUR, Story, tell_story

SECOND = timedelta(seconds=1)
EXPORT_FIELDS = {"position", "organization_id", "version", "type", "at", "by", "data", "chain"}


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


@pytest.fixture
def story(services: Services, clock: ManualClock) -> Story:
    return tell_story(services.app, clock)


def audit(services: Services, *args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args], obj=services, catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def replayed(services: Services, story_org: object, *args: str) -> dict[str, Any]:
    result = audit(services, "replay", "--org", str(story_org), "--format", "json", *args)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def service_cell(view: dict[str, Any], code: str) -> tuple[str, str, str]:
    cell = next(s for s in view["services"] if s["code"] == code)
    return cell["edition"], cell["contract"], cell["access"]


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------


def test_events_lists_the_whole_log_in_order_as_json_lines(
    services: Services, story: Story
) -> None:
    result = audit(services, "events", "--format", "json")

    assert result.exit_code == 0
    rows = json_lines(result)
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert len(rows) == services.app.recorder.max_notification_id()
    acme = [r for r in rows if r["organization_id"] == str(story.acme)]
    assert [r["version"] for r in acme] == list(range(1, story.acme_versions + 1))
    assert acme[4]["type"] == "TrialStarted"
    assert acme[4]["by"] == "u-alice"
    assert set(acme[0]) == EXPORT_FIELDS


def test_events_filters_by_organization_type_and_business_time(
    services: Services, story: Story
) -> None:
    only_globex = json_lines(audit(services, "events", "--org", str(story.globex)))
    assert {r["organization_id"] for r in only_globex} == {str(story.globex)}
    assert only_globex[0]["type"] == "OrganizationRegistered"

    trials = json_lines(audit(services, "events", "--type", "TrialStarted"))
    assert [(r["organization_id"], r["type"]) for r in trials] == [
        (str(story.acme), "TrialStarted"),
        (str(story.globex), "TrialStarted"),
    ]

    window = json_lines(
        audit(
            services,
            "events",
            "--org",
            str(story.acme),
            "--since",
            story.expiry_recorded_at.isoformat(),
            "--until",
            story.upgraded_at.isoformat(),
        )
    )
    assert [r["type"] for r in window] == ["TrialExpired", "TrialExtended"]


def test_events_table_is_readable_and_refuses_unknown_types(
    services: Services, story: Story
) -> None:
    table = audit(services, "events", "--format", "table", "--org", str(story.acme))
    assert table.exit_code == 0
    assert "TrialStarted" in table.stdout
    assert f"{story.acme_versions} event(s)" in table.stdout

    unknown = audit(services, "events", "--type", "TrialStartd")
    assert unknown.exit_code == 2
    assert "Unknown event type 'TrialStartd'" in unknown.output


def test_tables_fit_100_columns_and_cut_no_id_or_time(services: Services, story: Story) -> None:
    listing = audit(services, "events", "--format", "table")
    explained = audit(
        services, "replay", "--org", str(story.acme), "--explain", "--format", "table"
    )
    exported = json_lines(audit(services, "export"))

    for output in (listing.stdout, explained.stdout):
        assert max(cell_len(line) for line in output.splitlines()) <= 100
    for event in exported:  # every id and second-precise UTC time is there, whole
        assert event["organization_id"] in listing.stdout
        at = datetime.fromisoformat(event["at"]).strftime("%Y-%m-%d %H:%M:%S")
        assert at in listing.stdout
    assert f"{len(exported)} event(s)" in listing.stdout


def test_wide_events_are_one_line_each(services: Services, story: Story) -> None:
    wide = audit(services, "events", "--format", "table", "--wide", "--org", str(story.acme))

    rows = [line for line in wide.stdout.splitlines() if str(story.acme) in line]
    assert len(rows) == story.acme_versions
    assert all("T" in row and "+00:00" in row for row in rows)  # whole ISO times


def test_a_progress_bar_is_drawn_only_when_the_output_goes_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminals: set[object] = set()
    monkeypatch.setattr(audit_commands, "_is_terminal", lambda stream: stream in terminals)

    terminals.update({sys.stderr, sys.stdout})  # both on the screen: the output shows progress
    assert not audit_commands._shows_progress(quiet=False)
    terminals.discard(sys.stdout)  # output to a file or pipe, a person watching stderr
    assert audit_commands._shows_progress(quiet=False)
    assert not audit_commands._shows_progress(quiet=True)


def test_a_filtered_scan_ends_its_progress_at_the_whole_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_commands, "_shows_progress", lambda quiet: True)
    with audit_commands._progress("events", 15, quiet=False) as bar:
        assert bar is not None
        bar(4)  # the last page on which the filter found something
        tasks = bar._bar.tasks

    assert (tasks[0].completed, tasks[0].total) == (15, 15)


def test_listing_an_unknown_organization_is_an_error_not_an_empty_history(
    services: Services, story: Story
) -> None:
    for command in ("events", "export"):
        result = audit(services, command, "--org", "6f1c0a4e-0000-4000-8000-000000000000")
        assert result.exit_code == 2
        assert "No organization 6f1c0a4e-0000-4000-8000-000000000000" in result.output
    malformed = audit(services, "events", "--org", "acme")
    assert malformed.exit_code == 2
    assert "not an organization id" in malformed.output


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------


def test_replay_shows_the_access_before_and_after_every_transition(
    services: Services, story: Story
) -> None:
    def state_at(moment: datetime) -> tuple[str, tuple[str, str, str], tuple[str, str, str]]:
        view = replayed(services, story.acme, "--as-of", moment.isoformat())["access"]
        return view["bundle"]["state"], service_cell(view, "crm"), service_cell(view, "salesiq")

    standalone_crm = ("paid", "standalone", "standalone")
    crm_in_bundle = ("paid", "standalone", "bundle")
    nothing = ("none", "none", "none")
    on_trial = ("trial", "bundle", "bundle")
    bought = ("paid", "bundle", "bundle")

    assert state_at(story.trial_started_at - SECOND) == ("none", standalone_crm, nothing)
    assert state_at(story.trial_started_at) == ("trial", crm_in_bundle, on_trial)
    assert state_at(story.trial_ends_at - SECOND) == ("trial", crm_in_bundle, on_trial)
    # The trial's end passed: expired at once, before the sweep recorded it.
    assert state_at(story.trial_ends_at) == ("trial_expired", standalone_crm, nothing)
    assert state_at(story.expiry_recorded_at) == ("trial_expired", standalone_crm, nothing)
    assert state_at(story.extended_at - SECOND) == ("trial_expired", standalone_crm, nothing)
    assert state_at(story.extended_at) == ("trial", crm_in_bundle, on_trial)
    assert state_at(story.upgraded_at - SECOND) == ("trial", crm_in_bundle, on_trial)
    assert state_at(story.upgraded_at) == ("active", bought, bought)

    def globex_at(moment: datetime) -> tuple[str, tuple[str, str, str]]:
        view = replayed(services, story.globex, "--as-of", moment.isoformat())["access"]
        return view["bundle"]["state"], service_cell(view, "desk")

    assert globex_at(story.globex_trial_at - SECOND) == ("none", nothing)
    assert globex_at(story.globex_trial_at) == ("trial", on_trial)
    assert globex_at(story.globex_cancelled_at - SECOND) == ("trial", on_trial)
    assert globex_at(story.globex_cancelled_at) == ("cancelled", ("free", "none", "standalone"))


def test_replay_by_version_stops_at_that_event_and_shows_the_view_at_its_time(
    services: Services, story: Story
) -> None:
    replay = replayed(services, story.acme, "--version", "5")

    assert replay["version"] == 5
    assert replay["as_of"] == story.trial_started_at.isoformat()
    assert replay["access"]["bundle"]["state"] == "trial"
    assert replay["access"]["bundle"]["days_left"] == 30
    assert replay["facts"]["trial"]["started_by"] == "u-alice"
    assert replay["access"]["organization_id"] == str(story.acme)


def test_replay_of_the_latest_version_matches_what_the_service_answers(
    services: Services, story: Story
) -> None:
    service_view = services.app.access(story.acme)
    replay = replayed(services, story.acme)

    assert replay["version"] == service_view["version"]
    assert replay["access"]["bundle"] == service_view["bundle"]
    assert replay["access"]["services"] == service_view["services"]


def test_replay_explain_gives_the_reason_for_every_change(services: Services, story: Story) -> None:
    replay = replayed(
        services, story.acme, "--as-of", (story.extended_at + HOUR).isoformat(), "--explain"
    )
    steps = replay["explanation"]

    started = next(s for s in steps if s["type"] == "TrialStarted")
    assert started["by"] == "u-alice"
    assert {"subject": "bundle", "field": "state", "before": "none", "after": "trial"} in started[
        "changes"
    ]
    crm = next(c for c in started["changes"] if c["subject"] == "crm")
    assert (crm["before"]["access"], crm["after"]["access"]) == ("standalone", "bundle")

    ended = next(s for s in steps if s["cause"] == "time" and "trial ended" in s["summary"])
    assert ended["at"] == story.trial_ends_at.isoformat()
    assert {
        "subject": "bundle",
        "field": "state",
        "before": "trial",
        "after": "trial_expired",
    } in ended["changes"]
    window = next(s for s in steps if s["summary"] == "the extension window opened")
    assert window["at"] == (story.trial_ends_at - 7 * DAY).isoformat()

    recorded = next(s for s in steps if s["type"] == "TrialExpired")
    assert recorded["changes"] == []  # the view had already changed by time
    extended = next(s for s in steps if s["type"] == "TrialExtended")
    assert {
        "subject": "bundle",
        "field": "state",
        "before": "trial_expired",
        "after": "trial",
    } in extended["changes"]
    assert [s["type"] for s in steps if s["cause"] == "event"][-1] == "TrialExtended"

    table = audit(services, "replay", "--org", str(story.acme), "--explain", "--format", "table")
    assert table.exit_code == 0
    assert "TrialStarted" in table.stdout
    assert "trial → trial_expired" in table.stdout


def test_replay_refuses_unknown_organizations_and_times_before_registration(
    services: Services, story: Story
) -> None:
    unknown = audit(services, "replay", "--org", "6f1c0a4e-0000-4000-8000-000000000000")
    assert unknown.exit_code == 2
    assert "No organization" in unknown.output

    too_early = audit(
        services,
        "replay",
        "--org",
        str(story.acme),
        "--as-of",
        (story.registered_at - DAY).isoformat(),
    )
    assert too_early.exit_code == 2
    assert "not registered yet" in too_early.output

    no_such_version = audit(services, "replay", "--org", str(story.acme), "--version", "99")
    assert no_such_version.exit_code == 2
    assert "no version 99" in no_such_version.output

    both = audit(
        services, "replay", "--org", str(story.acme), "--version", "2", "--as-of", "2026-12-01"
    )
    assert both.exit_code == 2


# ---------------------------------------------------------------------------
# verify, digest, export on an untouched log
# ---------------------------------------------------------------------------


def test_verify_passes_on_an_untouched_log(services: Services, story: Story) -> None:
    result = audit(services, "verify", "--format", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["faults"] == []
    assert report["organizations"] == 2
    assert report["events"] == services.app.recorder.max_notification_id()

    table = audit(services, "verify", "--format", "table")
    assert table.exit_code == 0
    assert "OK:" in table.stdout


def test_digest_names_every_chain_head_and_verifies_against_itself(
    services: Services, story: Story, tmp_path: Path
) -> None:
    result = audit(services, "digest")
    assert result.exit_code == 0
    digest = json.loads(result.stdout)
    heads = {h["organization_id"]: h for h in digest["heads"]}
    assert heads[str(story.acme)]["version"] == story.acme_versions
    assert heads[str(story.acme)]["link"] == services.app.facts(story.acme).chain_head
    assert digest["organizations"] == 2
    assert len(digest["digest"]) == 64

    saved = tmp_path / "digest.json"
    assert audit(services, "digest", "--output", str(saved)).exit_code == 0
    assert json.loads(saved.read_text())["digest"] == digest["digest"]
    assert audit(services, "verify", "--digest", str(saved)).exit_code == 0


def test_verify_refuses_a_digest_file_that_was_edited(
    services: Services, story: Story, tmp_path: Path
) -> None:
    digest = json.loads(audit(services, "digest").stdout)
    digest["heads"][0]["version"] -= 1  # hide the last event from the saved digest
    saved = tmp_path / "digest.json"
    saved.write_text(json.dumps(digest))

    result = audit(services, "verify", "--digest", str(saved))

    assert result.exit_code == 2
    assert "do not hash to its digest" in result.output


def test_export_has_the_documented_schema_and_lets_an_outsider_recompute_the_chain(
    services: Services, story: Story
) -> None:
    result = audit(services, "export", "--org", str(story.acme))

    assert result.exit_code == 0
    rows = json_lines(result)
    assert len(rows) == story.acme_versions
    assert all(set(row) == EXPORT_FIELDS for row in rows)
    link = GENESIS_LINK
    for row in rows:
        link = chain_link(
            link,
            row["organization_id"],
            row["version"],
            row["type"],
            datetime.fromisoformat(row["at"]),
            row["data"],
        )
        assert row["chain"] == link
    purchase = next(r for r in rows if r["type"] == "UpgradePurchased")
    assert purchase["by"] == "u-alice"
    assert purchase["data"]["payment"]["last4"] == "4242"


def test_every_command_accepts_format_json_for_scripts(services: Services, story: Story) -> None:
    for command in ("events", "export"):
        lines = audit(services, command, "--format", "json")
        assert lines.exit_code == 0
        assert len(json_lines(lines)) == services.app.recorder.max_notification_id()
    for command in ("verify", "digest", "rebuild"):
        document = audit(services, command, "--format", "json")
        assert document.exit_code == 0, (command, document.output)
        assert isinstance(json.loads(document.stdout), dict)
    replay = audit(services, "replay", "--org", str(story.acme), "--format", "json")
    assert json.loads(replay.stdout)["version"] == story.acme_versions


def test_export_since_a_time_keeps_later_events_of_every_organization(
    services: Services, story: Story
) -> None:
    rows = json_lines(audit(services, "export", "--since", story.upgraded_at.isoformat()))

    assert rows[0]["type"] == "UpgradeCheckoutStarted"
    assert {r["organization_id"] for r in rows} == {str(story.acme), str(story.globex)}
    assert all(datetime.fromisoformat(r["at"]) >= story.upgraded_at for r in rows)


def test_commands_use_the_store_named_by_suite_database_url(
    tmp_path: Path, clock: ManualClock, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/env.sqlite3"
    services = build_services(url, clock=clock, catalog=catalog)
    story = tell_story(services.app, clock)
    services.close()
    monkeypatch.setenv("SUITE_DATABASE_URL", url)

    result = CliRunner().invoke(main, ["audit", "export", "--org", str(story.globex)])

    assert result.exit_code == 0, result.output
    assert json_lines(result)[0]["data"]["name"] == "Globex"
    assert CliRunner().invoke(main, ["audit", "verify"]).exit_code == 0


def test_the_installed_console_script_answers_json_lines_when_piped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/piped.sqlite3"
    clock = ManualClock(datetime(2026, 11, 26, 9, tzinfo=UTC))
    services = build_services(url, clock=clock)
    story = tell_story(services.app, clock)
    services.close()
    suitesub = Path(sys.executable).with_name("suitesub")

    piped = subprocess.run(
        [str(suitesub), "audit", "events", "--org", str(story.acme)],
        env={**os.environ, "SUITE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert piped.returncode == 0, piped.stderr
    rows = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [row["version"] for row in rows] == list(range(1, story.acme_versions + 1))
    assert piped.stderr == ""  # no progress bar when nobody watches


# ---------------------------------------------------------------------------
# tamper evidence: edit the stored rows behind the service's back
# ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def tampered_services(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> Iterator[Services]:
    """A store someone with database access will edit: a SQLite file or PostgreSQL."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        empty_postgres_tables(url)
    else:
        url = f"sqlite:///{tmp_path}/tampered.sqlite3"
    built = build_services(url, clock=clock, catalog=catalog)
    yield built
    built.close()


@pytest.fixture
def tampered_story(tampered_services: Services, clock: ManualClock) -> Story:
    return tell_story(tampered_services.app, clock)


class StoredLog:
    """Raw access to the events table, as someone with database access has."""

    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self.table = str(services.app.recorder.events_table_name)  # type: ignore[attr-defined]
        self.sqlite = services.settings.sqlite_path is not None
        self.position_column = "rowid" if self.sqlite else "notification_id"

    def _run(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        statement = statement.format(table=self.table, position=self.position_column)
        if self.settings.sqlite_path is not None:
            with sqlite3.connect(self.settings.sqlite_path) as db:
                return db.execute(statement, params).fetchall()
        with psycopg.connect(self.settings.url, autocommit=True) as db:
            cursor = db.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def _id(self, organization: UUID) -> object:
        return organization.hex if self.sqlite else organization

    def position(self, organization: UUID, version: int) -> int:
        [(position,)] = self._run(
            "SELECT {position} FROM {table} WHERE originator_id = ? AND originator_version = ?",
            self._id(organization),
            version,
        )
        return int(position)

    def state(self, position: int) -> bytes:
        [(state,)] = self._run("SELECT state FROM {table} WHERE {position} = ?", position)
        return bytes(state)

    def topic(self, position: int) -> str:
        [(topic,)] = self._run("SELECT topic FROM {table} WHERE {position} = ?", position)
        return str(topic)

    def set_state(self, position: int, state: bytes) -> None:
        self._run("UPDATE {table} SET state = ? WHERE {position} = ?", state, position)

    def set_topic(self, position: int, topic: str) -> None:
        self._run("UPDATE {table} SET topic = ? WHERE {position} = ?", topic, position)

    def set_version(self, position: int, version: int) -> None:
        self._run(
            "UPDATE {table} SET originator_version = ? WHERE {position} = ?", version, position
        )

    def swap_positions(self, first: int, second: int) -> None:
        self._run("UPDATE {table} SET {position} = -1 WHERE {position} = ?", first)
        self._run("UPDATE {table} SET {position} = ? WHERE {position} = ?", first, second)
        self._run("UPDATE {table} SET {position} = ? WHERE {position} = -1", second)

    def delete(self, *positions: int) -> None:
        for position in positions:
            self._run("DELETE FROM {table} WHERE {position} = ?", position)

    def delete_organization(self, organization: UUID) -> None:
        self._run("DELETE FROM {table} WHERE originator_id = ?", self._id(organization))


def faults(result: Result) -> list[tuple[str, int | None, str]]:
    report = json.loads(result.stdout)
    return [(f["organization_id"], f["version"], f["fault"]) for f in report["faults"]]


def test_verify_detects_a_changed_payload_byte(
    tampered_services: Services, tampered_story: Story
) -> None:
    log = StoredLog(tampered_services)
    position = log.position(tampered_story.acme, 5)  # TrialStarted by u-alice
    state = log.state(position)
    assert b"u-alice" in state
    log.set_state(position, state.replace(b"u-alice", b"u-alicf"))

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    assert faults(result) == [(str(tampered_story.acme), 5, "chain_broken")]
    table = audit(tampered_services, "verify", "--format", "table")
    assert table.exit_code == 1
    assert "chain_broken" in table.stdout
    assert "FAILED: 1 fault(s)" in table.stdout


def test_an_event_stored_at_an_older_class_version_verifies_from_its_stored_bytes(
    tampered_services: Services, tampered_story: Story
) -> None:
    """UpgradePurchased as version 2 stored it (no invoice; the upcast to 3 adds
    ``invoice: None``), the chain over those stored data: verify recomputes each
    link from the stored bytes, never from the upcast state (its one-decode path
    serves only events the mapper did not upcast)."""
    log = StoredLog(tampered_services)
    transcoder = tampered_services.app.mapper.transcoder
    acme = tampered_story.acme
    states = {
        version: transcoder.decode(log.state(log.position(acme, version)))
        for version in range(1, tampered_story.acme_versions + 1)
    }
    [purchase] = [v for v, state in states.items() if "invoice" in state and "credits" in state]
    assert states[purchase]["class_version"] == 3
    del states[purchase]["invoice"]
    states[purchase]["class_version"] = 2
    previous = states[purchase - 1]["chain"]
    for version in range(purchase, tampered_story.acme_versions + 1):
        state = states[version]
        event_type = log.topic(log.position(acme, version)).rpartition(":")[2]
        data = {k: v for k, v in event_data(state).items() if k != "class_version"}
        state["chain"] = previous = chain_link(
            previous, str(acme), version, event_type, state["timestamp"], data
        )
        log.set_state(log.position(acme, version), transcoder.encode(state))

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["faults"] == []


def test_verify_reports_an_event_that_no_longer_decodes(
    tampered_services: Services, tampered_story: Story
) -> None:
    log = StoredLog(tampered_services)
    position = log.position(tampered_story.globex, 2)
    log.set_state(position, log.state(position).replace(b"{", b"[", 1))

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    assert (str(tampered_story.globex), 2, "undecodable") in faults(result)
    listing = audit(tampered_services, "export")
    assert listing.exit_code == 2
    assert f"position {position}" in listing.output


def test_verify_detects_an_event_relabelled_as_another_type(
    tampered_services: Services, tampered_story: Story
) -> None:
    log = StoredLog(tampered_services)
    expired = log.position(tampered_story.acme, 6)  # TrialExpired, recorded by the sweep
    log.set_topic(expired, "domain.events:TrialCancelled")
    unknown = log.position(tampered_story.globex, 2)
    log.set_topic(unknown, "domain.events:TrialForgiven")

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    # Decoding is checked in the first pass, the chain in the second.
    assert faults(result) == [
        (str(tampered_story.globex), 2, "undecodable"),
        (str(tampered_story.acme), 6, "chain_broken"),
    ]


def test_verify_detects_a_deleted_event(tampered_services: Services, tampered_story: Story) -> None:
    log = StoredLog(tampered_services)
    log.delete(log.position(tampered_story.acme, 7))

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    assert faults(result) == [(str(tampered_story.acme), 7, "missing_versions")]


def test_verify_detects_two_events_swapped_in_the_log_order(
    tampered_services: Services, tampered_story: Story
) -> None:
    log = StoredLog(tampered_services)
    log.swap_positions(log.position(tampered_story.acme, 6), log.position(tampered_story.acme, 7))

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    assert faults(result) == [(str(tampered_story.acme), 6, "out_of_order")]


def test_verify_detects_two_events_swapped_in_content(
    tampered_services: Services, tampered_story: Story
) -> None:
    log = StoredLog(tampered_services)
    first = log.position(tampered_story.acme, 6)
    second = log.position(tampered_story.acme, 7)
    log.set_version(first, -1)
    log.set_version(second, 6)
    log.set_version(first, 7)

    result = audit(tampered_services, "verify", "--format", "json")

    assert result.exit_code == 1
    found = faults(result)
    assert (str(tampered_story.acme), 6, "chain_broken") in found
    assert (str(tampered_story.acme), 7, "chain_broken") in found
    assert (str(tampered_story.acme), 6, "out_of_order") in found


def test_a_saved_digest_detects_a_truncated_tail(
    tampered_services: Services, tampered_story: Story, tmp_path: Path
) -> None:
    saved = tmp_path / "digest.json"
    assert audit(tampered_services, "digest", "--output", str(saved)).exit_code == 0
    log = StoredLog(tampered_services)
    last = tampered_story.acme_versions
    log.delete(log.position(tampered_story.acme, last), log.position(tampered_story.acme, last - 1))

    # Without the digest the shorter chain is internally sound...
    assert audit(tampered_services, "verify").exit_code == 0
    # ...the saved digest proves the tail is gone.
    result = audit(tampered_services, "verify", "--digest", str(saved), "--format", "json")
    assert result.exit_code == 1
    assert faults(result) == [(str(tampered_story.acme), last - 1, "truncated")]


def test_a_saved_digest_detects_a_removed_organization(
    tampered_services: Services, tampered_story: Story, tmp_path: Path
) -> None:
    saved = tmp_path / "digest.json"
    assert audit(tampered_services, "digest", "--output", str(saved)).exit_code == 0
    StoredLog(tampered_services).delete_organization(tampered_story.globex)

    result = audit(tampered_services, "verify", "--digest", str(saved), "--format", "json")

    assert result.exit_code == 1
    assert [(o, f) for o, _, f in faults(result)] == [
        (str(tampered_story.globex), "organization_removed")
    ]


# ---------------------------------------------------------------------------
# rebuild
# ---------------------------------------------------------------------------


def test_rebuild_reports_a_corrupted_view_row_and_apply_repairs_it(
    services: Services, story: Story
) -> None:
    services.read_model.catch_up()
    assert audit(services, "rebuild", "--format", "table").exit_code == 0

    views = services.read_model.views
    with views.changes() as changes:  # damage the live row behind the projection's back
        row = changes.row(str(story.globex))
        assert row is not None
        changes.put(
            OrganizationRow(row.organization_id, row.facts, version=99, position=row.position)
        )

    reported = audit(services, "rebuild", "--format", "json")
    assert reported.exit_code == 1
    report = json.loads(reported.stdout)
    assert report["applied"] is False
    assert [
        (d["organization_id"], d["field"], d["live"], d["rebuilt"]) for d in report["differences"]
    ] == [
        (str(story.globex), "access.version", 99, row.version),
    ]
    table = audit(services, "rebuild", "--format", "table")
    assert "access.version" in table.stdout
    assert "1 difference(s) in 1 organization(s)" in table.stdout

    applied = audit(services, "rebuild", "--apply", "--format", "table")
    assert applied.exit_code == 1  # it found the difference, and repaired it
    assert "Applied" in applied.stdout
    assert services.read_model.access(story.globex)["version"] == row.version
    again = audit(services, "rebuild")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["differences"] == []
