"""The API's own tables beside the events: sandbox charges, idempotency keys,
the test clock's offset — on every store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import pytest

from application.bootstrap import Services, build_services
from application.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from application.payments import PaymentDeclined, PaymentGatewayUnavailable, SandboxGateway
from application.sql_tables import MemoryTables
from domain.card_numbers import CardDataNotAccepted
from domain.clock import ManualClock


@pytest.fixture
def services(store_url: str, clock: ManualClock) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, test_clock=True)
    yield built
    built.close()


def _sandbox(services: Services) -> SandboxGateway:
    gateway = services.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


def test_the_sandbox_charges_a_key_once(services: Services) -> None:
    gateway = _sandbox(services)

    first = gateway.charge("chk_1", 1_000, "JPY", "tok_mastercard", "upgrade")
    again = gateway.charge("chk_1", 1_000, "JPY", "tok_mastercard", "upgrade")

    assert again == first
    assert (first.brand, first.last4) == ("mastercard", "4444")
    assert gateway.lookup("chk_1") == first
    assert gateway.lookup("chk_unknown") is None
    assert gateway.count_charges() == 1


def test_a_voided_key_can_never_be_charged(services: Services) -> None:
    gateway = _sandbox(services)

    voided = gateway.void("chk_1")
    with pytest.raises(PaymentDeclined) as late:
        gateway.charge("chk_1", 1_000, "JPY", "tok_visa", "upgrade")

    assert voided.status == "voided"
    assert not voided.succeeded
    assert late.value.code == "checkout_abandoned"
    assert gateway.count_charges() == 0


def test_voiding_a_charged_key_answers_the_charge_and_keeps_it(services: Services) -> None:
    gateway = _sandbox(services)
    charged = gateway.charge("chk_1", 1_000, "JPY", "tok_visa", "upgrade")

    assert gateway.void("chk_1") == charged
    assert gateway.count_charges() == 1


def test_the_sandbox_remembers_a_decline_and_forgets_a_processing_error(
    services: Services,
) -> None:
    gateway = _sandbox(services)

    with pytest.raises(PaymentDeclined) as declined:
        gateway.charge("chk_1", 1_000, "JPY", "tok_insufficientFunds", "upgrade")
    with pytest.raises(PaymentGatewayUnavailable):
        gateway.charge("chk_2", 1_000, "JPY", "tok_processingError", "upgrade")
    retried = gateway.charge("chk_2", 1_000, "JPY", "tok_visa", "upgrade")

    assert declined.value.code == "insufficient_funds"
    remembered = gateway.lookup("chk_1")
    assert remembered is not None
    assert not remembered.succeeded
    assert remembered.decline_code == "insufficient_funds"
    assert retried.succeeded
    assert gateway.count_charges() == 1


def test_an_idempotency_key_replays_its_answer_and_refuses_another_request(
    services: Services,
) -> None:
    store = services.idempotency
    claim = store.claim(scope="org-1", key="k", fingerprint="f1", organization_id="org-1")

    with pytest.raises(IdempotencyKeyInUse):
        store.claim(scope="org-1", key="k", fingerprint="f1", organization_id="org-1")
    store.finish(claim, 201, '{"ok":true}')
    replay = store.claim(scope="org-1", key="k", fingerprint="f1", organization_id="org-1")
    with pytest.raises(IdempotencyKeyReused):
        store.claim(scope="org-1", key="k", fingerprint="f2", organization_id="org-1")
    other_scope = store.claim(scope="org-2", key="k", fingerprint="f2", organization_id="org-2")

    assert claim.replay is None
    assert replay.replay is not None
    assert (replay.replay.status, replay.replay.body) == (201, '{"ok":true}')
    assert other_scope.replay is None


def test_an_idempotency_key_holding_a_card_number_is_never_written(services: Services) -> None:
    store = services.idempotency

    with pytest.raises(CardDataNotAccepted):
        store.claim(scope="s", key="4111.1111.1111.1111", fingerprint="f", organization_id=None)

    innocent = store.claim(
        scope="s", key="4111.1111.1111.1112", fingerprint="f", organization_id=None
    )
    assert innocent.replay is None  # one digit off: fails the Luhn check


def test_a_released_key_is_free_and_an_abandoned_claim_is_taken_over(
    services: Services, clock: ManualClock
) -> None:
    store = services.idempotency
    released = store.claim(scope="s", key="k1", fingerprint="f", organization_id=None)
    store.release(released)
    again = store.claim(scope="s", key="k1", fingerprint="f", organization_id=None)
    store.claim(scope="s", key="k2", fingerprint="f", organization_id=None)  # then "crashes"

    clock.advance(timedelta(minutes=6))
    taken_over = store.claim(scope="s", key="k2", fingerprint="f", organization_id=None)

    assert again.replay is None
    assert again.token != released.token
    assert taken_over.replay is None


def test_a_released_key_stays_bound_to_its_request(services: Services) -> None:
    store = services.idempotency
    released = store.claim(scope="s", key="k1", fingerprint="f", organization_id=None)
    store.release(released)

    with pytest.raises(IdempotencyKeyReused):
        store.claim(scope="s", key="k1", fingerprint="another", organization_id=None)


def test_every_process_on_the_database_reads_the_same_test_clock(
    tmp_path: object, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path}/clock.sqlite3"
    worker_a = build_services(url, clock=clock, test_clock=True)
    worker_b = build_services(url, clock=clock, test_clock=True)
    assert worker_a.test_clock is not None

    worker_a.test_clock.advance(timedelta(days=1))
    worker_a.test_clock.advance(timedelta(hours=1))

    assert worker_b.clock.now() == clock.now() + timedelta(days=1, hours=1)
    worker_a.close()
    worker_b.close()


def test_a_memory_cursor_does_not_outlive_its_transaction() -> None:
    """The ``memory://`` tables share one connection under a lock: a cursor the
    caller still holds after its transaction must not touch that connection
    again (the garbage collector resetting its statement, outside the lock,
    broke another dispatcher thread's statement once in CI)."""
    tables = MemoryTables()
    tables.create(["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY)"])
    with tables.transaction() as cursor:
        tables.executemany(cursor, "INSERT INTO notes (id) VALUES (%s)", [(1,), (2,)])
        tables.execute(cursor, "SELECT id FROM notes ORDER BY id")
        assert cursor.fetchone()["id"] == 1  # the statement is left mid-way on purpose

    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        cursor.fetchone()
    with tables.read() as again:
        tables.execute(again, "SELECT count(*) AS n FROM notes")
        assert again.fetchone()["n"] == 2
