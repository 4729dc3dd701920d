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
from typing import Any, Protocol

from application.sql_tables import SqlTables
from domain.clock import Clock
from domain.errors import DomainError

SUCCEEDED = "succeeded"
DECLINED = "declined"
VOIDED = "voided"
CHECKOUT_ABANDONED = "checkout_abandoned"


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
        tables.create([SANDBOX_TABLE])

    def charge(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        existing = self.lookup(key)
        if existing is None:
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
            self._tables.execute(
                cursor,
                f"SELECT {_COLUMNS} FROM sandbox_charges WHERE idempotency_key = %s",  # noqa: S608
                (key,),
            )
            row = cursor.fetchone()
        return None if row is None else self._result(row)

    def void(self, key: str) -> ChargeResult:
        return self._insert_first(
            key,
            VOIDED,
            charge_id=None,
            amount=0,
            currency="",
            card=None,
            decline=CHECKOUT_ABANDONED,
            description="voided by reconciliation",
        )

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
        if token == SANDBOX_PROCESSING_ERROR:
            # Nothing is recorded: the caller may retry with the same key.
            msg = "The payment gateway failed to process the charge; it is safe to retry."
            raise PaymentGatewayUnavailable(msg)
        card = SANDBOX_CARDS.get(token)
        if card is not None:
            status, charge_id, decline = SUCCEEDED, f"ch_{uuid.uuid4().hex[:24]}", None
        else:
            status, charge_id = DECLINED, None
            decline = SANDBOX_DECLINES.get(token, ("invalid_payment_token", ""))[0]
        return self._insert_first(
            key,
            status,
            charge_id=charge_id,
            amount=amount,
            currency=currency,
            card=card,
            decline=decline,
            description=description,
        )

    def _insert_first(
        self,
        key: str,
        status: str,
        *,
        charge_id: str | None,
        amount: int,
        currency: str,
        card: SandboxCard | None,
        decline: str | None,
        description: str,
    ) -> ChargeResult:
        """Record the key's outcome unless one exists; answer the key's row."""
        created_at = self._clock.now().isoformat()  # read before the transaction opens
        with self._lock, self._tables.transaction() as cursor:
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
        return self._result(row)

    def _result(self, row: Any) -> ChargeResult:
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
        )


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
