"""Large, valid event logs, built fast.

Every event is made by the Organization aggregate's own commands (so it
obeys the rules and carries a correct tamper-evidence chain link), encoded
by the application's mapper, and bulk-inserted through the recorder's
connection in big batches. Organizations follow a mix of real life cycles:
trials that end in an upgrade, cancelled trials, expired trials, a failed
card then a purchase, and long-lived customers with many admin changes.

A generated SQLite log is cached under ``var/bench/logs/`` keyed by its size
and a hash of the code that shapes events (domain/, this file, the library
version), and copied for each use; PostgreSQL logs are copied in from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.persistence import Mapper

from application.catalog_loader import default_catalog
from application.service import SuiteSubscriptions
from application.settings import database_settings
from benchmarks.harness import BENCH_DIR, REPO_ROOT
from benchmarks.organizations import T0
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.organization import Organization
from domain.quote import AddOnRequest, UpgradeRequest

LOG_CACHE_DIR = BENCH_DIR / "logs"
INSERT_BATCH = 20_000
#: Below this many events one process builds the log; above, every core helps.
PARALLEL_THRESHOLD = 150_000

Row = tuple[str, int, str, bytes]  # originator_id hex, version, topic, state


# -- life cycles: each returns an organization with its events still pending ----------


def _org(index: int, at: datetime) -> Organization:
    return Organization.register(
        organization_id=uuid5(NAMESPACE_URL, f"bench-org-{index}"),
        name=f"Bench Org {index}",
        country="JP",
        owner_user_id=f"u-owner-{index}",
        at=at,
    )


def _subscribe(
    org: Organization, catalog: Catalog, service: str, super_admin: str, at: datetime
) -> None:
    org.record_standalone_subscription(
        service=service,
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 1, 1),
        period_end=date(2027, 1, 1),
        super_admin=super_admin,
        admins=["u-helper"],
        by=None,
        at=at,
        catalog=catalog,
    )


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def _buy(
    org: Organization, catalog: Catalog, by: str, at: datetime, *, fail_first: bool, index: int
) -> None:
    request = UpgradeRequest("yearly", 10, (AddOnRequest("storage-10gb", 2),))
    total = org.quote(request, at=at, catalog=catalog).total
    contact = {"company_name": "Bench K.K.", "country": "JP", "email": "billing@bench.example"}
    attempts = ["failed", "paid"] if fail_first else ["paid"]
    for attempt, outcome in enumerate(attempts):
        checkout = f"chk_{org.id.hex}_{attempt}"
        org.begin_checkout(
            checkout_id=checkout,
            by=by,
            request=request,
            billing_contact=contact,
            expected_total=total,
            # Letters for the id's digits: a run of the hex's digits can pass
            # the card-number check the domain applies to the key.
            idempotency_key=f"idem-{org.id.hex.translate(_LETTERS)}-{attempt}",
            at=at,
            catalog=catalog,
        )
        if outcome == "failed":
            org.fail_checkout(checkout_id=checkout, reason="card_declined", at=at)
        else:
            payment = {"gateway": "sandbox", "charge_id": f"ch_{checkout}", "brand": "visa"}
            org.complete_checkout(
                checkout_id=checkout,
                payment={**payment, "last4": "4242"},
                at=at,
                # One number per organization (the built log has no allocator table).
                invoice_number=f"{catalog.issuer.invoice_prefix}-{at.year}-{index + 1:06d}",
                invoice_issued_at=at,
                catalog=catalog,
            )


def trial_then_upgrade(catalog: Catalog, index: int, at: datetime) -> Organization:
    org = _org(index, at)
    _subscribe(org, catalog, "crm", "u-alice", at)
    _subscribe(org, catalog, "desk", "u-bob", at)
    org.change_service_admins(
        service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob",
        by_operator=False, at=at, catalog=catalog,
    )  # fmt: skip
    org.start_trial(by="u-alice", at=at, catalog=catalog)
    later = at + timedelta(days=25)
    org.extend_trial(by="u-alice", at=later, catalog=catalog)
    _buy(org, catalog, "u-alice", later + timedelta(days=3), fail_first=False, index=index)
    return org


def cancelled_trial(catalog: Catalog, index: int, at: datetime) -> Organization:
    org = _org(index, at)
    org.start_trial(by=f"u-owner-{index}", at=at, catalog=catalog)
    org.cancel_trial(by=f"u-owner-{index}", at=at + timedelta(days=4), catalog=catalog)
    return org


def expired_trial(catalog: Catalog, index: int, at: datetime) -> Organization:
    org = _org(index, at)
    _subscribe(org, catalog, "salesiq", "u-carol", at)
    org.start_trial(by="u-carol", at=at, catalog=catalog)
    org.expire_trial(at=at + timedelta(days=31))
    return org


def bought_after_a_declined_card(catalog: Catalog, index: int, at: datetime) -> Organization:
    org = _org(index, at)
    _subscribe(org, catalog, "crm", "u-dave", at)
    _buy(org, catalog, "u-dave", at + timedelta(days=1), fail_first=True, index=index)
    return org


def long_lived(catalog: Catalog, index: int, at: datetime) -> Organization:
    org = _org(index, at)
    _subscribe(org, catalog, "crm", "u-erin", at)
    for change in range(40):
        org.change_service_admins(
            service="crm", super_admin="u-erin", admins=[f"u-admin-{change % 9}"],
            by="u-erin", by_operator=False, at=at + timedelta(hours=change), catalog=catalog,
        )  # fmt: skip
    return org


LIFE_CYCLES: tuple[Callable[[Catalog, int, datetime], Organization], ...] = (
    trial_then_upgrade,
    cancelled_trial,
    expired_trial,
    bought_after_a_declined_card,
    long_lived,
)


# -- building rows --------------------------------------------------------------------------


def _mapper() -> Mapper[UUID]:
    app = SuiteSubscriptions({"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=ManualClock(T0))
    return app.mapper


def _rows_for(first: int, last: int) -> list[Row]:
    """Rows of organizations ``first``..``last - 1``, in the order they would be saved."""
    catalog = default_catalog()
    mapper = _mapper()
    rows: list[Row] = []
    for index in range(first, last):
        life_cycle = LIFE_CYCLES[index % len(LIFE_CYCLES)]
        organization = life_cycle(catalog, index, T0 + timedelta(seconds=index))
        for domain_event in organization.collect_events():
            stored = mapper.to_stored_event(domain_event)
            originator_id = stored.originator_id
            assert isinstance(originator_id, UUID)
            rows.append((originator_id.hex, stored.originator_version, stored.topic, stored.state))
    return rows


def _organization_chunks(events: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Ranges of organization indexes whose events add up to at least ``events``."""
    cycles = -(-events // _events_per_cycle())  # whole cycles, rounded up
    organizations = cycles * len(LIFE_CYCLES)
    for first in range(0, organizations, chunk):
        yield first, min(first + chunk, organizations)


_EVENTS_PER_CYCLE: list[int] = []


def _events_per_cycle() -> int:
    if not _EVENTS_PER_CYCLE:
        _EVENTS_PER_CYCLE.append(len(_rows_for(0, len(LIFE_CYCLES))))
    return _EVENTS_PER_CYCLE[0]


def iterate_rows(events: int) -> Iterator[list[Row]]:
    """Batches of rows making a log of at least ``events`` events."""
    chunks = list(_organization_chunks(events, chunk=2_000))
    workers = min(os.cpu_count() or 1, len(chunks))
    if events < PARALLEL_THRESHOLD or workers < 2:
        for first, last in chunks:
            yield _rows_for(first, last)
        return
    # A few chunks in flight, consumed in order: the parent never holds more
    # than those rows (a million rows at once took 600 MB).
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[Row]]] = deque()
        for first, last in chunks:
            pending.append(pool.submit(_rows_for, first, last))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# -- storing --------------------------------------------------------------------------------


def code_version() -> str:
    """A hash of everything that decides the bytes of a generated log."""
    digest = hashlib.sha256()
    sources = [
        *sorted((REPO_ROOT / "domain").glob("*.py")),
        REPO_ROOT / "application" / "service.py",  # the transcodings
        Path(__file__),
    ]
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    digest.update(str(_library_version()).encode())
    return digest.hexdigest()[:12]


def _library_version() -> str:
    from importlib import metadata

    return metadata.version("eventsourcing")


def cached_sqlite_log(events: int) -> Path:
    """A SQLite file holding a generated log of at least ``events`` events (cached)."""
    LOG_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_CACHE_DIR / f"log-{events}-{code_version()}.sqlite3"
    if path.exists():
        return path
    for stale in LOG_CACHE_DIR.glob(f"log-{events}-*.sqlite3*"):
        stale.unlink()
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    _write_sqlite(building, events)
    building.rename(path)
    return path


def _write_sqlite(path: Path, events: int) -> None:
    # The library creates its tables (and any later schema) itself.
    app = SuiteSubscriptions.from_database_url(f"sqlite:///{path}", clock=ManualClock(T0))
    app.close()
    statement = "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
    statement += "VALUES (?, ?, ?, ?)"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")  # a cache: rebuilt if lost
        for batch in iterate_rows(events):
            for start in range(0, len(batch), INSERT_BATCH):
                connection.execute("BEGIN")
                connection.executemany(statement, batch[start : start + INSERT_BATCH])
                connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def count_events(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        (count,) = connection.execute("SELECT COUNT(*) FROM stored_events").fetchone()
    finally:
        connection.close()
    return int(count)


def log_in_store(events: int, store_kind: str, url: str) -> int:
    """Fill the (new, empty) store at ``url`` with a generated log; return its size."""
    source = cached_sqlite_log(events)
    if store_kind == "sqlite":
        target = database_settings(url).sqlite_path
        assert target is not None
        shutil.copyfile(source, target)
        return count_events(target)
    return _copy_into_postgres(source, url)


def _copy_into_postgres(source: Path, url: str) -> int:
    import psycopg

    app = SuiteSubscriptions.from_database_url(url, clock=ManualClock(T0))
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    app.close()
    settings = database_settings(url).persistence_env
    conninfo = (
        f"host={settings['POSTGRES_HOST']} port={settings['POSTGRES_PORT']} "
        f"user={settings['POSTGRES_USER']} dbname={settings['POSTGRES_DBNAME']}"
    )
    reader = sqlite3.connect(source)
    copied = 0
    try:
        with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
            columns = "(originator_id, originator_version, topic, state)"
            with cursor.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                rows: Any = reader.execute(
                    "SELECT originator_id, originator_version, topic, state "
                    "FROM stored_events ORDER BY rowid"
                )
                for originator_id, version, topic, state in rows:
                    copy.write_row((UUID(hex=originator_id), version, topic, state))
                    copied += 1
    finally:
        reader.close()
    return copied
