"""A sandbox gateway that also charges cards on file, for plan-change tests.

The change is charged to the contract's card on file (its ``payment_method``
reference). Until the sandbox makes reusable payment methods itself, tests put
a card on file with ``PaymentMethodChanged`` and this fake charges it as the
sandbox token it stands for: ``pm_visa`` as ``tok_visa``, ``pm_declined`` as
``tok_chargeDeclined``. Everything else (keys, outcomes, voids) is the sandbox's.
"""

from __future__ import annotations

from uuid import UUID

from application.payments import ChargeResult, SandboxGateway
from application.service import SuiteSubscriptions

CARDS_ON_FILE = {
    "pm_visa": ("tok_visa", "visa", "4242"),
    "pm_declined": ("tok_chargeDeclined", "visa", "0002"),
}


class CardsOnFile(SandboxGateway):
    def charge(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        sandbox_token = CARDS_ON_FILE.get(token, (token, None, None))[0]
        return super().charge(key, amount, currency, sandbox_token, description)


def put_card_on_file(app: SuiteSubscriptions, org: UUID, card: str = "pm_visa") -> None:
    _token, brand, last4 = CARDS_ON_FILE[card]
    app.change_payment_method(
        org, by="u-owner", gateway="sandbox", payment_method=card, brand=brand, last4=last4
    )
