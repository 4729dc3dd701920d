"""Prove the log untouched: recompute the tamper-evidence chain from stored bytes.

:func:`verify_log` checks, streaming:

1. in log (notification) order — every event decodes, both as stored bytes
   and through the application's mapper (upcasters included), and each
   organization's versions appear in increasing order of position;
2. per organization, in version order — versions run 1, 2, 3… with no gap,
   and every link equals ``chain_link(previous link, content)`` recomputed
   from the stored bytes (domain.tamper_evidence).

An organization whose versions arrive 1, 2, 3… in log order (every sound
one) has its chain checked during pass 1, on the very rows pass 2 would read
again; only the others — out of order, with a gap, undecodable — are re-read
per organization in pass 2. Memory is bounded by the number of organizations
(a few numbers and one link each), never by the number of events. A saved
:class:`ChainDigest` adds the one thing a chain cannot show by itself: that
nothing was cut off the end since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, StoredEvent

from application.audit import (
    LIBRARY_ENVELOPE,
    PAGE_SIZE,
    Progress,
    UndecodableEvent,
    decode_stored_event,
    event_type_of,
    iterate_notifications,
)
from domain.tamper_evidence import ENVELOPE_FIELDS, GENESIS_LINK, canonical_json, chain_link
from domain.text import may_hold_unsafe_text, unsafe_text_locations

DIGEST_FORMAT = "suitesub-audit-digest/1"
#: Organizations checked between two calls of ``chain_progress``.
CHAIN_PROGRESS_EVERY = 100


@dataclass(frozen=True, slots=True)
class Fault:
    """One finding: which organization, which version, what is wrong."""

    organization_id: str
    version: int | None
    fault: str  # a stable code, see docs/audit.md
    detail: str
    position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "version": self.version,
            "fault": self.fault,
            "detail": self.detail,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class ChainHead:
    organization_id: str
    version: int
    link: str

    def to_dict(self) -> dict[str, Any]:
        return {"organization_id": self.organization_id, "version": self.version, "link": self.link}


@dataclass(frozen=True, slots=True)
class ChainDigest:
    """The chain heads of every organization and one SHA-256 over them."""

    heads: tuple[ChainHead, ...]
    position: int
    events: int
    created_at: datetime | None = None

    @property
    def digest(self) -> str:
        return digest_of_heads(self.heads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DIGEST_FORMAT,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "position": self.position,
            "events": self.events,
            "organizations": len(self.heads),
            "digest": self.digest,
            "heads": [head.to_dict() for head in self.heads],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainDigest:
        """Read a saved digest; refuse one whose heads do not match its digest."""
        if data.get("format") != DIGEST_FORMAT:
            msg = f"not a {DIGEST_FORMAT} file"
            raise ValueError(msg)
        heads = tuple(
            ChainHead(str(h["organization_id"]), int(h["version"]), str(h["link"]))
            for h in data["heads"]
        )
        digest = cls(heads=heads, position=int(data["position"]), events=int(data["events"]))
        if digest.digest != data.get("digest"):
            msg = "the digest file was altered: its heads do not hash to its digest"
            raise ValueError(msg)
        return digest


def digest_of_heads(heads: tuple[ChainHead, ...]) -> str:
    ordered = sorted(heads, key=lambda h: h.organization_id)
    return hashlib.sha256(canonical_json([h.to_dict() for h in ordered])).hexdigest()


@dataclass(slots=True)
class VerificationReport:
    events: int = 0
    organizations: int = 0
    position: int = 0
    faults: list[Fault] = field(default_factory=list)
    digest_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.faults

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "organizations": self.organizations,
            "position": self.position,
            "digest_checked": self.digest_checked,
            "faults": [f.to_dict() for f in self.faults],
        }


@dataclass(slots=True)
class _Seen:
    """What the pass through the log keeps per organization: a few numbers and
    one link, never events."""

    organization_id: str
    last_version: int
    last_position: int
    events: int = 1
    undecodable: set[int] = field(default_factory=set)
    #: So far its versions ran 1, 2, 3… in log order and every one decoded, so
    #: its chain was checked on the way: ``link`` is the last stored link and
    #: ``faults`` what the check found. Otherwise pass 2 re-reads it.
    in_order: bool = True
    link: str | None = GENESIS_LINK
    faults: list[Fault] | None = None


def verify_log(
    app: Application[UUID],
    *,
    saved_digest: ChainDigest | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
    on_fault: Callable[[Fault], None] | None = None,
    chain_progress: Callable[[int, int], None] | None = None,
) -> VerificationReport:
    """Check the whole log; every problem becomes a :class:`Fault` in the report.

    ``progress(position)`` follows pass 1 through the log;
    ``chain_progress(organizations done, organizations)`` follows pass 2.
    """
    report = VerificationReport()

    def found(fault: Fault) -> None:
        report.faults.append(fault)
        if on_fault is not None:
            on_fault(fault)

    expected = {} if saved_digest is None else {h.organization_id: h for h in saved_digest.heads}
    # Keyed by the notification's UUID: str(UUID) once per organization, not
    # once per event (benchmark audit_verify).
    seen: dict[UUID | str, _Seen] = {}
    mapper = app.mapper
    plain = mapper.compressor is None and mapper.cipher is None
    to_domain_event = mapper.to_domain_event
    for notification in iterate_notifications(app, page_size=page_size, progress=progress):
        report.events += 1
        report.position = notification.id
        previous = seen.get(notification.originator_id)
        if (
            previous is None
            or not plain
            or not _next_in_order_and_sound(to_domain_event, notification, previous, expected)
        ):
            _check_in_log_order(app, notification, seen, found, expected)
    report.organizations = len(seen)

    ordered = sorted(seen.values(), key=lambda organization: organization.organization_id)
    for done, organization in enumerate(ordered, start=1):
        organization_id = organization.organization_id
        saved_head = expected.pop(organization_id, None)
        if organization.in_order:
            # Pass 1 saw every version in order: pass 2 would read the same rows.
            for fault in organization.faults or ():
                found(fault)
            _check_not_truncated(organization_id, organization.last_version, saved_head, found)
        else:
            _check_chain(app, organization_id, organization, saved_head, found)
        if chain_progress is not None and (done % CHAIN_PROGRESS_EVERY == 0 or done == len(seen)):
            chain_progress(done, len(seen))
    for missing in expected.values():
        found(
            Fault(
                missing.organization_id,
                missing.version,
                "organization_removed",
                f"the saved digest has this organization at version {missing.version}; "
                "the log has none of its events",
            )
        )
    report.digest_checked = saved_digest is not None
    return report


def _next_in_order_and_sound(
    to_domain_event: Callable[[Notification], Any],
    notification: Notification,
    previous: _Seen,
    expected: dict[str, ChainHead],
) -> bool:
    """Pass 1's common case in one function, or ``False`` and nothing changed.

    The next version of an organization seen in order so far, stored plain,
    loading through the mapper at its class's current version, with no text
    the domain refuses and its link recomputing through orjson: the steps of
    :func:`_check_in_log_order` for a sound event without a call per check
    (benchmark audit_verify). Anything else — the first event, a gap, an
    upcast, a refusal, a link orjson does not confirm, the saved digest's
    version — goes to :func:`_check_in_log_order`, which names the fault.
    """
    version = notification.originator_version
    link = previous.link
    if not previous.in_order or version != previous.last_version + 1 or link is None:
        return False
    stored = notification.state
    if may_hold_unsafe_text(stored):
        return False
    saved_head = expected.get(previous.organization_id)
    if saved_head is not None and saved_head.version == version:
        return False
    try:
        domain_event = to_domain_event(notification)
    except Exception:  # the general path names the fault
        return False
    cls = type(domain_event)
    class_version = getattr(cls, "class_version", 1)
    if class_version != 1 and not stored_at_version(stored, class_version):
        return False
    state = domain_event.__dict__
    at = state.get("timestamp")
    chain = state.get("chain")
    if not isinstance(at, datetime) or at.tzinfo is None or not isinstance(chain, str):
        return False
    # The event is discarded: its state becomes the data in place.
    for name in _NOT_DATA:
        state.pop(name, None)
    content = {
        "organization_id": previous.organization_id,
        "version": version,
        "type": event_type_of(notification.topic),
        "at": (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat(),
        "data": state,
    }
    try:
        encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return False
    if hashlib.sha256(link.encode("ascii") + encoded).hexdigest() != chain:
        return False
    previous.events += 1
    previous.last_version = version
    previous.last_position = notification.id
    previous.link = chain
    return True


def _check_in_log_order(
    app: Application[UUID],
    notification: Notification,
    seen: dict[UUID | str, _Seen],
    found: Callable[[Fault], None],
    expected: dict[str, ChainHead],
) -> None:
    version = notification.originator_version
    previous = seen.get(notification.originator_id)
    if previous is None:
        organization_id = str(notification.originator_id)
        event = _decode(app, notification, organization_id, version, found)
        seen[notification.originator_id] = previous = _Seen(
            organization_id, version, notification.id
        )
        previous.in_order = version == 1
    else:
        organization_id = previous.organization_id
        event = _decode(app, notification, organization_id, version, found)
        previous.events += 1
        if version < previous.last_version:
            found(
                Fault(
                    organization_id,
                    version,
                    "out_of_order",
                    f"version {version} at position {notification.id} comes after "
                    f"version {previous.last_version} at position {previous.last_position}",
                    notification.id,
                )
            )
            previous.in_order = False
        else:
            if version != previous.last_version + 1:
                previous.in_order = False
            previous.last_version = version
            previous.last_position = notification.id
    if event is None:
        previous.undecodable.add(version)
        previous.in_order = False
        return
    _check_text(app, notification, event, found)
    if previous.in_order:
        faults = _link_faults(
            previous.link, organization_id, version, event, expected.get(organization_id)
        )
        previous.link = event.chain
        if faults:
            previous.faults = [*(previous.faults or ()), *faults]


def _check_text(
    app: Application[UUID],
    notification: Notification,
    event: _Event,
    found: Callable[[Fault], None],
) -> None:
    """A fault for each string the domain would have refused (domain/text.py).

    Such an event was written past the domain; it may poison the views
    (application/view_faults.py). A look at the stored bytes first keeps this
    off the cost of sound events (compressed or encrypted bytes are always walked).
    """
    mapper = app.mapper
    plain = mapper.compressor is None and mapper.cipher is None
    if plain and not may_hold_unsafe_text(notification.state):
        return
    for location, problem in unsafe_text_locations(event.data, "data"):
        found(
            Fault(
                event.organization_id,
                event.version,
                "unsafe_text",
                f"{location} {problem}",
                notification.id,
            )
        )


class _Event(Protocol):
    """What the checks read of an event: a :class:`LoggedEvent` or a :class:`_Stored`."""

    @property
    def organization_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def chain(self) -> str | None: ...


class _Stored(NamedTuple):
    """An event as stored, read on pass 1's one-decode path: a tuple is built in a
    quarter of a frozen dataclass's time (benchmark audit_verify)."""

    organization_id: str
    version: int
    type: str
    at: datetime
    data: dict[str, Any]
    chain: str | None


#: Keys of a decoded event's state that are not its business data.
_NOT_DATA = ENVELOPE_FIELDS | LIBRARY_ENVELOPE


def _decode(
    app: Application[UUID],
    notification: Notification,
    organization_id: str,
    version: int,
    found: Callable[[Fault], None],
) -> _Event | None:
    """The event as stored, checked to load through the mapper too; ``None`` and a
    fault when it does not.

    One JSON decode serves both checks when the mapper upcast nothing (its
    state then *is* the stored state): the event's class was never upcast, or
    the stored ``class_version`` is already the class's; otherwise, and to
    name any failure exactly, the stored bytes and the mapper are tried apart.
    """
    try:
        domain_event = app.mapper.to_domain_event(notification)
    except Exception:  # the slow path below names the fault exactly
        domain_event = None
    if domain_event is not None and not _upcast(app, notification, type(domain_event)):
        state = domain_event.__dict__
        at = state.get("timestamp")
        if isinstance(at, datetime) and at.tzinfo is not None:
            # The event is discarded: its state becomes the data in place, the
            # envelope popped, not copied (benchmark audit_verify).
            chain = state.pop("chain", None)
            for name in _NOT_DATA:
                state.pop(name, None)
            return _Stored(
                organization_id,
                version,
                event_type_of(notification.topic),
                at if at.tzinfo is UTC else at.astimezone(UTC),
                state,
                chain if isinstance(chain, str) else None,
            )
    try:
        event = decode_stored_event(app, notification)
        if domain_event is None:
            # Name the mapper's refusal (an upcast event that loaded is not
            # decoded a third time: benchmark audit_verify).
            app.mapper.to_domain_event(notification)
    except UndecodableEvent as error:
        found(Fault(organization_id, version, "undecodable", error.reason, notification.id))
        return None
    except Exception as error:  # the mapper refused it: a finding, not a crash
        found(
            Fault(
                organization_id,
                version,
                "undecodable",
                f"does not load as a domain event: {type(error).__name__}: {error}",
                notification.id,
            )
        )
        return None
    return event


def _upcast(app: Application[UUID], notification: Notification, cls: type) -> bool:
    """Whether the mapper may have upcast this event (so its state is not the stored one).

    An event stored at its class's current version was not: a look at the
    stored version with orjson (a tenth of the mapper's decode) spares most
    such events the second, full decode (benchmark audit_verify).
    """
    class_version = getattr(cls, "class_version", 1)
    if class_version == 1:
        return False
    mapper = app.mapper
    if mapper.compressor is not None or mapper.cipher is not None:
        return True
    if stored_at_version(notification.state, class_version):
        return False
    try:
        stored = orjson.loads(notification.state)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(stored, dict):
        return True
    stored_version = stored.get("class_version", 1)
    return not isinstance(stored_version, int) or stored_version < class_version


def stored_at_version(stored: bytes, class_version: int) -> bool:
    """Whether plain stored bytes, valid JSON, end as the library's encoder ends a
    state stored at ``class_version``: its top-level object's last member.

    The encoder writes ``"class_version":N`` last, with no spaces. In valid JSON
    that tail closes the top-level object (a nested object would end ``}}``) on
    a key ``class_version`` (a quote inside a string is escaped, so a backslash
    before the tail means a longer key), and the last of repeated keys is the
    one both decoders keep. Two byte comparisons instead of a full parse
    (benchmark audit_verify); ``False`` leaves the question to the parse.
    """
    ending = b'"class_version":%d}' % class_version
    return stored.endswith(ending) and stored[-len(ending) - 1 : -len(ending)] != b"\\"


def _link_faults(
    previous_link: str | None,
    organization_id: str,
    version: int,
    event: _Event,
    saved_head: ChainHead | None,
) -> list[Fault]:
    """What is wrong with one event's link (and the saved digest's, at its version)."""
    faults = []
    if event.chain is None:
        faults.append(Fault(organization_id, version, "chain_missing", "the event carries no link"))
    elif previous_link is not None and not _link_holds(previous_link, organization_id, event):
        faults.append(
            Fault(
                organization_id,
                version,
                "chain_broken",
                "the stored link does not match the link recomputed from the "
                "previous link and this event's stored content",
            )
        )
    if saved_head is not None and version == saved_head.version and event.chain != saved_head.link:
        faults.append(
            Fault(
                organization_id,
                version,
                "digest_mismatch",
                "this version's link differs from the one in the saved digest",
            )
        )
    return faults


def _link_holds(previous_link: str, organization_id: str, event: _Event) -> bool:
    """Whether ``event.chain`` is the link recomputed from ``previous_link``.

    orjson writes the same canonical bytes (sorted keys, no spaces, UTF-8) as
    :func:`domain.tamper_evidence.canonical_json` for plain JSON data, three
    times faster; only a mismatch is decided by the reference implementation,
    so a difference in encoding can never pass for a broken chain.
    """
    content = {
        "organization_id": organization_id,
        "version": event.version,
        "type": event.type,
        "at": event.at.isoformat(),
        "data": event.data,
    }
    try:
        encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        pass
    else:
        if hashlib.sha256(previous_link.encode("ascii") + encoded).hexdigest() == event.chain:
            return True
    recomputed = chain_link(
        previous_link, organization_id, event.version, event.type, event.at, event.data
    )
    return recomputed == event.chain


def _check_not_truncated(
    organization_id: str,
    last_version: int,
    saved_head: ChainHead | None,
    found: Callable[[Fault], None],
) -> None:
    if saved_head is not None and last_version < saved_head.version:
        found(
            Fault(
                organization_id,
                last_version + 1,
                "truncated",
                f"the saved digest has version {saved_head.version}; the log ends at "
                f"version {last_version}",
            )
        )


def _stored_events(
    app: Application[UUID], organization_id: str, page_size: int = PAGE_SIZE
) -> Iterator[StoredEvent]:
    after = 0
    while True:
        page = app.recorder.select_events(UUID(organization_id), gt=after, limit=page_size)
        if not page:
            return
        yield from page
        after = page[-1].originator_version
        if len(page) < page_size:
            return


def _check_chain(
    app: Application[UUID],
    organization_id: str,
    seen: _Seen,
    saved_head: ChainHead | None,
    found: Callable[[Fault], None],
) -> None:
    """Pass 2 for one organization pass 1 saw out of order, with gaps or undecodable
    events: re-read it in version order; contiguous versions and every link."""
    previous_link: str | None = GENESIS_LINK
    expected_version = 1
    for stored in _stored_events(app, organization_id):
        version = stored.originator_version
        if version != expected_version:
            missing = (
                f"version {expected_version}"
                if version == expected_version + 1
                else f"versions {expected_version}..{version - 1}"
            )
            found(
                Fault(
                    organization_id,
                    expected_version,
                    "missing_versions",
                    f"{missing} missing before version {version}",
                )
            )
            previous_link = None  # the link before this one is gone: cannot recompute
        expected_version = version + 1
        if version in seen.undecodable:
            previous_link = None
            continue
        try:
            event = decode_stored_event(app, _as_notification(stored))
        except UndecodableEvent as error:  # recorded after pass 1 read the log
            found(Fault(organization_id, version, "undecodable", error.reason))
            previous_link = None
            continue
        for fault in _link_faults(previous_link, organization_id, version, event, saved_head):
            found(fault)
        previous_link = event.chain
    _check_not_truncated(organization_id, expected_version - 1, saved_head, found)


def _as_notification(stored: StoredEvent) -> Notification:
    return Notification(
        id=0,
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
    )


def chain_digest(
    app: Application[UUID],
    *,
    created_at: datetime | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> ChainDigest:
    """The chain head (latest version and link) of every organization, as stored.

    Streams the log keeping one head per organization. It does not verify;
    run :func:`verify_log` first so the digest vouches for a sound log.
    """
    heads: dict[str, ChainHead] = {}
    events = 0
    position = 0
    for notification in iterate_notifications(app, page_size=page_size, progress=progress):
        events += 1
        position = notification.id
        event = decode_stored_event(app, notification)
        current = heads.get(event.organization_id)
        if event.chain is not None and (current is None or event.version > current.version):
            heads[event.organization_id] = ChainHead(
                event.organization_id, event.version, event.chain
            )
    ordered = tuple(heads[key] for key in sorted(heads))
    return ChainDigest(heads=ordered, position=position, events=events, created_at=created_at)


@dataclass(frozen=True, slots=True)
class OrganizationVerification:
    """The chain check of one organization (the support console's "verify")."""

    organization_id: str
    events: int
    faults: tuple[Fault, ...]

    @property
    def ok(self) -> bool:
        return not self.faults


def verify_organization(app: Application[UUID], organization_id: UUID) -> OrganizationVerification:
    """Check one organization's stream as :func:`verify_log`'s second pass does:
    versions 1, 2, 3… with no gap, every event decodes, every link recomputes."""
    faults: list[Fault] = []
    key = str(organization_id)
    events = sum(1 for _ in _stored_events(app, key))
    _check_chain(app, key, _Seen(key, last_version=0, last_position=0), None, faults.append)
    return OrganizationVerification(organization_id=key, events=events, faults=tuple(faults))
