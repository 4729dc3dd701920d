"""The payment gateway port and the built-in ``sandbox`` gateway (SPEC §5).

A gateway charges a *token* (never card data) under an idempotency key: the
same key always answers with the same outcome and never charges twice. The
purchase saga uses the checkout id as the key, so a retry after a crash, and
the reconcile command asking "what happened to this checkout?", are safe.

Outcomes:

- a successful charge returns a :class:`ChargeResult`;
- a refusal the customer can act on raises :class:`PaymentDeclined`
  (402: ``card_declined``, ``insufficient_funds``, ``invalid_payment_token``);
  it is remembered under the key like a charge;
- a gateway failure raises :class:`PaymentGatewayUnavailable` (502,
  ``payment_gateway_error``); nothing is recorded, so a retry may succeed;
- the first successful charge of a token returns a reusable ``payment_method``
  (``pm_…``) that later charges use instead of the token (SPEC §11);
  :meth:`PaymentGateway.save_payment_method` saves a token without charging
  it (a new card put on file);
- a key that reconciliation *voided* (its checkout was given up as abandoned)
  can never be charged afterwards: a late charge raises
  :class:`PaymentDeclined` with ``checkout_abandoned``. Void and charge race
  on the key's row, so exactly one of them wins and money is never taken for
  a checkout recorded as failed.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from application.sql_tables import SqlTables
from domain.clock import Clock
from domain.errors import DomainError

SUCCEEDED = "succeeded"
DECLINED = "declined"
VOIDED = "voided"
CHECKOUT_ABANDONED = "checkout_abandoned"
#: The failure reason reconcile records for a charge that never completed.
ABANDONED = "abandoned"
#: How long reconcile leaves a started charge (upgrade, renewal, change) to the
#: process that began it before finishing it from the gateway's answer.
RECONCILE_GRACE = timedelta(minutes=10)


class PaymentError(DomainError):
    """The payment did not happen. ``status`` is the HTTP status the SPEC gives it."""

    status = 402


class PaymentDeclined(PaymentError):
    code = "card_declined"
    status = 402


class PaymentGatewayUnavailable(PaymentError):
    code = "payment_gateway_error"
    status = 502


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the gateway says about one idempotency key."""

    gateway: str
    key: str
    status: str  # "succeeded" or "declined"
    charge_id: str | None
    amount: int
    currency: str
    brand: str | None = None
    last4: str | None = None
    decline_code: str | None = None
    #: The reusable payment method later charges use (``pm_…``), once charged.
    payment_method: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def payment_reference(self) -> dict[str, str | None]:
        """The reference stored on UpgradePurchased and shown on the receipt."""
        return {
            "gateway": self.gateway,
            "charge_id": self.charge_id,
            "brand": self.brand,
            "last4": self.last4,
        }

    def with_payment_method(self) -> dict[str, str | None]:
        """The reference and the reusable payment method, for the charge's record."""
        return {**self.payment_reference(), "payment_method": self.payment_method}


@dataclass(frozen=True, slots=True)
class SavedPaymentMethod:
    """A card saved at the gateway: its reusable reference and what may be shown."""

    reference: str
    brand: str | None
    last4: str | None


#: The payment of a purchase whose total is 0: the gateway is not called
#: (SPEC §11), so there is no gateway, charge or card. ``gateway`` is null
#: exactly when nothing was charged.
NO_CHARGE: dict[str, str | None] = {
    "gateway": None,
    "charge_id": None,
    "brand": None,
    "last4": None,
}


class PaymentGateway(Protocol):
    name: str

    def charge(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        """Charge once per key; raise PaymentDeclined / PaymentGatewayUnavailable."""
        ...

    def lookup(self, key: str) -> ChargeResult | None:
        """What happened to ``key``: its charge (or remembered decline), or ``None``."""
        ...

    def void(self, key: str) -> ChargeResult:
        """Make ``key`` unchargeable unless it was already charged or declined.

        Answers what the key now holds: the earlier charge or decline if there
        was one (the void lost the race), else the void itself.
        """
        ...

    def save_payment_method(self, token: str) -> SavedPaymentMethod:
        """Save a token as a reusable payment method without charging it;
        raise PaymentDeclined for a token that cannot be saved."""
        ...


@dataclass(frozen=True, slots=True)
class SandboxCard:
    brand: str
    last4: str


SANDBOX_CARDS = {
    "tok_visa": SandboxCard("visa", "4242"),
    "tok_mastercard": SandboxCard("mastercard", "4444"),
}
SANDBOX_DECLINES = {
    "tok_chargeDeclined": ("card_declined", "The card was declined."),
    "tok_insufficientFunds": ("insufficient_funds", "The card has insufficient funds."),
}
SANDBOX_PROCESSING_ERROR = "tok_processingError"
#: Succeeds on the first charge and declines every later one (dunning stories).
SANDBOX_RENEWAL_DECLINED = "tok_visa_renewalDeclined"
SANDBOX_CARDS[SANDBOX_RENEWAL_DECLINED] = SandboxCard("visa", "0341")
PAYMENT_METHOD_PREFIX = "pm_"

SANDBOX_TABLE = (
    "CREATE TABLE IF NOT EXISTS sandbox_charges ("
    " idempotency_key TEXT PRIMARY KEY,"
    " status TEXT NOT NULL,"
    " charge_id TEXT,"
    " amount BIGINT NOT NULL,"
    " currency TEXT NOT NULL,"
    " brand TEXT,"
    " last4 TEXT,"
    " decline_code TEXT,"
    " description TEXT NOT NULL,"
    " created_at TEXT NOT NULL)"
)
_COLUMNS = "idempotency_key, status, charge_id, amount, currency, brand, last4, decline_code"
#: Reusable payment methods: made by a token's first successful charge
#: (``charged_key``) or saved without a charge (a new card on file). The token
#: itself is never stored; only whether its card declines later charges.
SANDBOX_PAYMENT_METHODS = (
    "CREATE TABLE IF NOT EXISTS sandbox_payment_methods ("
    " id TEXT PRIMARY KEY,"
    " declines_later INTEGER NOT NULL,"
    " brand TEXT NOT NULL,"
    " last4 TEXT NOT NULL,"
    " charged_key TEXT UNIQUE,"
    " created_at TEXT NOT NULL)"
)


class SandboxGateway:
    """The built-in test gateway: tokens only, outcomes fixed by the token.

    Charges are rows of ``sandbox_charges`` in the event store's database; the
    key is the primary key, so two processes charging the same key at once
    still record one charge.
    """

    name = "sandbox"

    def __init__(self, tables: SqlTables, clock: Clock) -> None:
        self._tables = tables
        self._clock = clock
        self._lock = threading.Lock()
        tables.create([SANDBOX_TABLE, SANDBOX_PAYMENT_METHODS])

    def charge(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        if token == SANDBOX_PROCESSING_ERROR:
            existing = self.lookup(key)
            if existing is None:
                # Nothing is recorded: the caller may retry with the same key.
                msg = "The payment gateway failed to process the charge; it is safe to retry."
                raise PaymentGatewayUnavailable(msg)
        else:
            existing = self._record(key, amount, currency, token, description)
        if existing.status == VOIDED:
            raise PaymentDeclined(
                decline_message(CHECKOUT_ABANDONED),
                code=CHECKOUT_ABANDONED,
                details={"key": key},
            )
        if existing.status == DECLINED:
            code = existing.decline_code or "card_declined"
            raise PaymentDeclined(decline_message(code), code=code, details={"key": key})
        return existing

    def lookup(self, key: str) -> ChargeResult | None:
        with self._tables.read() as cursor:
            row = self._select_charge(cursor, key)
            method = None if row is None else self._method_made_by(cursor, key)
        return None if row is None else self._result(row, method)

    def void(self, key: str) -> ChargeResult:
        created_at = self._clock.now().isoformat()  # read before the transaction opens
        with self._lock, self._tables.transaction() as cursor:
            return self._insert_first(
                cursor,
                key,
                VOIDED,
                charge_id=None,
                amount=0,
                currency="",
                card=None,
                decline=CHECKOUT_ABANDONED,
                description="voided by reconciliation",
                created_at=created_at,
            )

    def save_payment_method(self, token: str) -> SavedPaymentMethod:
        if token == SANDBOX_PROCESSING_ERROR:
            msg = "The payment gateway failed to save the card; it is safe to retry."
            raise PaymentGatewayUnavailable(msg)
        card = SANDBOX_CARDS.get(token)
        if card is None:
            code = SANDBOX_DECLINES.get(token, ("invalid_payment_token", ""))[0]
            raise PaymentDeclined(decline_message(code), code=code)
        reference = f"{PAYMENT_METHOD_PREFIX}{uuid.uuid4().hex[:24]}"
        created_at = self._clock.now().isoformat()
        with self._lock, self._tables.transaction() as cursor:
            self._tables.execute(
                cursor,
                "INSERT INTO sandbox_payment_methods "
                "(id, declines_later, brand, last4, created_at) VALUES (%s, %s, %s, %s, %s)",
                (reference, _declines_later(token), card.brand, card.last4, created_at),
            )
        return SavedPaymentMethod(reference, card.brand, card.last4)

    def count_charges(self) -> int:
        """How many successful charges exist (tests: "charged exactly once")."""
        with self._tables.read() as cursor:
            self._tables.execute(
                cursor, "SELECT COUNT(*) AS n FROM sandbox_charges WHERE status = %s", (SUCCEEDED,)
            )
            row = cursor.fetchone()
        return int(row["n"])

    def _record(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        """The key's outcome: the one recorded, else the token's, recorded now.

        One transaction for the look-up, the payment method's row and the
        insert (benchmark renewal_sweep: three transactions per charge were a
        sixth of a sweep's time; one per charge is what a gateway call costs).
        """
        created_at = self._clock.now().isoformat()  # read before the transaction opens
        with self._lock, self._tables.transaction() as cursor:
            row = self._select_charge(cursor, key)
            if row is not None:
                return self._result(row, self._method_made_by(cursor, key))
            reused: str | None = None  # why a reusable payment method was refused
            if token.startswith(PAYMENT_METHOD_PREFIX):
                # A reusable payment method: a later charge of the card it was made from.
                saved = self._payment_method(cursor, token)
                card = None if saved is None or saved[0] else SandboxCard(*saved[1:])
                if card is None:
                    reused = "invalid_payment_token" if saved is None else "card_declined"
            else:
                card = SANDBOX_CARDS.get(token)
            if card is not None:
                status, charge_id, decline = SUCCEEDED, f"ch_{uuid.uuid4().hex[:24]}", None
            elif reused is not None:
                status, charge_id, decline = DECLINED, None, reused
            else:
                status, charge_id = DECLINED, None
                decline = SANDBOX_DECLINES.get(token, ("invalid_payment_token", ""))[0]
            return self._insert_first(
                cursor,
                key,
                status,
                charge_id=charge_id,
                amount=amount,
                currency=currency,
                card=card,
                decline=decline,
                description=description,
                created_at=created_at,
                token=token,
            )

    def _insert_first(
        self,
        cursor: Any,
        key: str,
        status: str,
        *,
        charge_id: str | None,
        amount: int,
        currency: str,
        card: SandboxCard | None,
        decline: str | None,
        description: str,
        created_at: str,
        token: str | None = None,
    ) -> ChargeResult:
        """In ``cursor``'s write transaction: record the key's outcome unless one
        exists; answer the key's row.

        A token's first successful charge makes its reusable payment method in
        the same transaction; a charge of a payment method answers that one.
        """
        # The primary key settles a race between two charges of one key:
        # the first row wins and both callers read it back.
        self._tables.execute(
            cursor,
            f"INSERT INTO sandbox_charges ({_COLUMNS}, description, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (
                key,
                status,
                charge_id,
                amount,
                currency,
                None if card is None else card.brand,
                None if card is None else card.last4,
                decline,
                description,
                created_at,
            ),
        )
        self._tables.execute(
            cursor,
            f"SELECT {_COLUMNS} FROM sandbox_charges WHERE idempotency_key = %s",  # noqa: S608
            (key,),
        )
        row = cursor.fetchone()
        won = row["charge_id"] is not None and row["charge_id"] == charge_id
        if won and token is not None and not token.startswith(PAYMENT_METHOD_PREFIX):
            assert card is not None
            self._tables.execute(
                cursor,
                "INSERT INTO sandbox_payment_methods "
                "(id, declines_later, brand, last4, charged_key, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    f"{PAYMENT_METHOD_PREFIX}{uuid.uuid4().hex[:24]}",
                    _declines_later(token),
                    card.brand,
                    card.last4,
                    key,
                    created_at,
                ),
            )
        if token is not None and token.startswith(PAYMENT_METHOD_PREFIX):
            method: str | None = token
        else:
            method = self._method_made_by(cursor, key)
        return self._result(row, method)

    def _payment_method(self, cursor: Any, reference: str) -> tuple[bool, str, str] | None:
        """Whether a payment method declines later charges, its brand and last 4."""
        self._tables.execute(
            cursor,
            "SELECT declines_later, brand, last4 FROM sandbox_payment_methods WHERE id = %s",
            (reference,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return bool(row["declines_later"]), str(row["brand"]), str(row["last4"])

    def _select_charge(self, cursor: Any, key: str) -> Any:
        self._tables.execute(
            cursor,
            f"SELECT {_COLUMNS} FROM sandbox_charges WHERE idempotency_key = %s",  # noqa: S608
            (key,),
        )
        return cursor.fetchone()

    def _method_made_by(self, cursor: Any, key: str) -> str | None:
        self._tables.execute(
            cursor, "SELECT id FROM sandbox_payment_methods WHERE charged_key = %s", (key,)
        )
        row = cursor.fetchone()
        return None if row is None else str(row["id"])

    def _result(self, row: Any, payment_method: str | None = None) -> ChargeResult:
        get = row.__getitem__
        return ChargeResult(
            gateway=self.name,
            key=get("idempotency_key"),
            status=get("status"),
            charge_id=get("charge_id"),
            amount=int(get("amount")),
            currency=get("currency"),
            brand=get("brand"),
            last4=get("last4"),
            decline_code=get("decline_code"),
            payment_method=payment_method if get("status") == SUCCEEDED else None,
        )


def _declines_later(token: str) -> int:
    return 1 if token == SANDBOX_RENEWAL_DECLINED else 0


def decline_message(code: str) -> str:
    """What a refusal with ``code`` says (also when it is told again from the log)."""
    if code == CHECKOUT_ABANDONED:
        return "This checkout was abandoned and can no longer be paid; start a new one."
    for known_code, message in SANDBOX_DECLINES.values():
        if known_code == code:
            return message
    if code == "invalid_payment_token":
        return "The payment token is not valid; obtain a new token from the payment form."
    return "The payment was declined."
