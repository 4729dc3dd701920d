"""The catalog: services, the bundle, prices and add-ons.

The catalog is data (a TOML document); this module is its model and the
validation that turns a parsed document into that model. A malformed or
inconsistent catalog is refused with a :class:`CatalogError` that names the
source, the key and the problem, so a bad deploy fails at start-up rather
than on the first quote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from domain.errors import CatalogError

BILLING_PERIODS = ("monthly", "yearly")
MONTHS_PER_PERIOD = {"monthly": 1, "yearly": 12}
_CODE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: A qualified invoice issuer's registration number (適格請求書発行事業者登録番号).
REGISTRATION_NUMBER = re.compile(r"^T[0-9]{13}$")
#: An invoice number prefix: capital letters and digits, starting with a letter.
INVOICE_PREFIX_PATTERN = r"[A-Z][A-Z0-9]{0,9}"
_INVOICE_PREFIX = re.compile(f"^{INVOICE_PREFIX_PATTERN}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name: str
    #: Whether a purchased standalone plan is usable inside the bundle during
    #: a trial (CRM and SalesIQ in the default catalog).
    usable_in_bundle_during_trial: bool


@dataclass(frozen=True, slots=True)
class AddOn:
    code: str
    name: str
    #: Price per unit per month, in the currency's minor units.
    monthly_price: int


@dataclass(frozen=True, slots=True)
class Bundle:
    code: str
    name: str
    currency: str
    services: tuple[str, ...]
    trial_days: int
    extension_days: int
    max_extensions: int
    #: An extension may be asked for from this many days before the trial ends.
    extension_window_days: int
    #: Price per user per month for each billing period, in minor units.
    prices: Mapping[str, int]
    add_ons: tuple[AddOn, ...]
    tax_rate_percent: int
    #: ``trial.will_end`` is recorded this many days before the trial ends (SPEC §12).
    trial_will_end_days: int = 3
    #: ``bundle.renewal_upcoming`` is recorded this many days before a yearly renewal.
    renewal_upcoming_days: int = 7
    #: A failed renewal is retried this many days after the period's end, in
    #: order; after the last failed retry the contract ends (SPEC §11).
    dunning_retry_days: tuple[int, ...] = (1, 3, 7)

    def price_per_user_month(self, billing_period: str) -> int:
        return self.prices[billing_period]

    def add_on(self, code: str) -> AddOn | None:
        return next((a for a in self.add_ons if a.code == code), None)


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who issues the invoices (SPEC §11): a registered qualified invoice issuer."""

    #: The legal name as registered (株式会社スイートサンプル).
    name: str
    #: The name in English, printed beside it on bilingual invoices.
    name_en: str
    #: ``T`` and 13 digits.
    registration_number: str
    #: Invoice numbers are ``{prefix}-{YYYY}-{seq:06d}``.
    invoice_prefix: str
    address: str
    email: str


@dataclass(frozen=True, slots=True)
class Catalog:
    services: tuple[Service, ...]
    bundle: Bundle
    issuer: Issuer
    standalone_url_template: str
    bundle_url_template: str
    # Derived once: every access view looks each service up (docs/performance.md).
    _by_code: Mapping[str, Service] = field(init=False, repr=False, compare=False)
    _codes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # reversed: the first service of a code wins, as a search in order found it
        object.__setattr__(self, "_by_code", {s.code: s for s in reversed(self.services)})
        object.__setattr__(self, "_codes", tuple(s.code for s in self.services))

    @property
    def service_codes(self) -> tuple[str, ...]:
        return self._codes

    def service(self, code: str) -> Service | None:
        return self._by_code.get(code)

    def standalone_url(self, service: str, org_id: str) -> str:
        return self.standalone_url_template.format(service=service, org_id=org_id)

    def bundle_url(self, service: str, org_id: str) -> str:
        return self.bundle_url_template.format(service=service, org_id=org_id)


def parse_catalog(document: Mapping[str, Any], source: str) -> Catalog:
    """Validate a parsed catalog document and build the model.

    ``source`` names where the document came from (a file path) so that every
    error message points at it.
    """
    reader = _Reader(source)
    urls = reader.table(document, "urls")
    standalone_url = reader.string(urls, "urls.standalone", "standalone")
    bundle_url = reader.string(urls, "urls.bundle", "bundle")
    for key, template in (("urls.standalone", standalone_url), ("urls.bundle", bundle_url)):
        if "{service}" not in template or "{org_id}" not in template:
            raise CatalogError(source, key, "must contain {service} and {org_id}")
        try:
            template.format(service="crm", org_id="org")
        except (KeyError, IndexError, ValueError) as error:
            # Found now rather than on the first access view that formats it.
            raise CatalogError(
                source, key, f"unknown placeholder or stray brace: {error}"
            ) from None

    raw_services = document.get("services")
    if not isinstance(raw_services, list) or not raw_services:
        raise CatalogError(source, "services", "must be a non-empty array of tables")
    services: list[Service] = []
    for index, raw in enumerate(raw_services):
        key = f"services[{index}]"
        if not isinstance(raw, Mapping):
            raise CatalogError(source, key, "must be a table")
        code = reader.code(raw, f"{key}.code")
        if any(s.code == code for s in services):
            raise CatalogError(source, f"{key}.code", f"duplicate service {code!r}")
        services.append(
            Service(
                code=code,
                name=reader.string(raw, f"{key}.name", "name"),
                usable_in_bundle_during_trial=reader.boolean(
                    raw,
                    f"{key}.usable_in_bundle_during_trial",
                    "usable_in_bundle_during_trial",
                ),
            )
        )

    raw_bundle = reader.table(document, "bundle")
    currency = reader.string(raw_bundle, "bundle.currency", "currency")
    if not _CURRENCY.match(currency):
        raise CatalogError(source, "bundle.currency", "must be an ISO 4217 code")
    bundle_services = raw_bundle.get("services")
    if not isinstance(bundle_services, list) or not bundle_services:
        raise CatalogError(source, "bundle.services", "must be a non-empty array")
    known = {s.code for s in services}
    for code in bundle_services:
        if code not in known:
            raise CatalogError(source, "bundle.services", f"unknown service {code!r}")
    if len(set(bundle_services)) != len(bundle_services):
        raise CatalogError(source, "bundle.services", "lists a service twice")

    raw_prices = reader.table(raw_bundle, "prices", "bundle.prices")
    prices: dict[str, int] = {}
    for period in BILLING_PERIODS:
        prices[period] = reader.amount(raw_prices, f"bundle.prices.{period}", period)
    extra_periods = set(raw_prices) - set(BILLING_PERIODS)
    if extra_periods:
        raise CatalogError(
            source, "bundle.prices", f"unknown billing period {sorted(extra_periods)[0]!r}"
        )

    raw_add_ons = raw_bundle.get("add_ons", [])
    if not isinstance(raw_add_ons, list):
        raise CatalogError(source, "bundle.add_ons", "must be an array of tables")
    add_ons: list[AddOn] = []
    for index, raw in enumerate(raw_add_ons):
        key = f"bundle.add_ons[{index}]"
        if not isinstance(raw, Mapping):
            raise CatalogError(source, key, "must be a table")
        code = reader.code(raw, f"{key}.code")
        if any(a.code == code for a in add_ons):
            raise CatalogError(source, f"{key}.code", f"duplicate add-on {code!r}")
        add_ons.append(
            AddOn(
                code=code,
                name=reader.string(raw, f"{key}.name", "name"),
                monthly_price=reader.amount(raw, f"{key}.monthly_price", "monthly_price"),
            )
        )

    tax = reader.integer(raw_bundle, "bundle.tax_rate_percent", "tax_rate_percent")
    if not 0 <= tax <= 100:
        raise CatalogError(source, "bundle.tax_rate_percent", "must be between 0 and 100")

    bundle = Bundle(
        code=reader.code(raw_bundle, "bundle.code"),
        name=reader.string(raw_bundle, "bundle.name", "name"),
        currency=currency,
        services=tuple(bundle_services),
        trial_days=reader.positive(raw_bundle, "bundle.trial_days", "trial_days"),
        extension_days=reader.positive(raw_bundle, "bundle.extension_days", "extension_days"),
        max_extensions=reader.integer(
            raw_bundle, "bundle.max_extensions", "max_extensions", minimum=0
        ),
        extension_window_days=reader.integer(
            raw_bundle, "bundle.extension_window_days", "extension_window_days", minimum=0
        ),
        prices=prices,
        add_ons=tuple(add_ons),
        tax_rate_percent=tax,
        **_reminder_days(reader, raw_bundle),
        **_dunning_retry_days(reader, raw_bundle),
    )
    # Services outside the bundle have no place in an access view of the bundle.
    in_bundle = set(bundle.services)
    ordered = tuple(s for s in services if s.code in in_bundle)
    return Catalog(
        services=ordered,
        bundle=bundle,
        issuer=_parse_issuer(reader, reader.table(document, "issuer")),
        standalone_url_template=standalone_url,
        bundle_url_template=bundle_url,
    )


def _parse_issuer(reader: _Reader, raw: Mapping[str, Any]) -> Issuer:
    source = reader.source
    registration = reader.string(raw, "issuer.registration_number", "registration_number")
    if not REGISTRATION_NUMBER.match(registration):
        raise CatalogError(
            source, "issuer.registration_number", "must be 'T' followed by 13 digits"
        )
    prefix = reader.string(raw, "issuer.invoice_prefix", "invoice_prefix")
    if not _INVOICE_PREFIX.match(prefix):
        raise CatalogError(
            source,
            "issuer.invoice_prefix",
            "must be 1 to 10 capital letters or digits, starting with a letter",
        )
    email = reader.string(raw, "issuer.email", "email")
    if not _EMAIL.match(email):
        raise CatalogError(source, "issuer.email", "must be an email address")
    return Issuer(
        name=reader.string(raw, "issuer.name", "name"),
        name_en=reader.string(raw, "issuer.name_en", "name_en"),
        registration_number=registration,
        invoice_prefix=prefix,
        address=reader.string(raw, "issuer.address", "address"),
        email=email,
    )


def _reminder_days(reader: _Reader, raw_bundle: Mapping[str, Any]) -> dict[str, Any]:
    """``[bundle.reminders]`` (optional): how many days ahead reminders are recorded."""
    raw = raw_bundle.get("reminders")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CatalogError(reader.source, "bundle.reminders", "must be a table")
    return {
        f"{name}_days": reader.positive(raw, f"bundle.reminders.{name}", name)
        for name in ("trial_will_end", "renewal_upcoming")
        if name in raw
    }


def _dunning_retry_days(reader: _Reader, raw_bundle: Mapping[str, Any]) -> dict[str, Any]:
    """``bundle.dunning_retry_days`` (optional): increasing whole days after the period's end."""
    if "dunning_retry_days" not in raw_bundle:
        return {}
    key = "bundle.dunning_retry_days"
    raw = raw_bundle["dunning_retry_days"]
    problem = "must be an array of increasing positive integers (days after the period's end)"
    if not isinstance(raw, list) or any(
        isinstance(day, bool) or not isinstance(day, int) or day < 1 for day in raw
    ):
        raise CatalogError(reader.source, key, problem)
    if any(later <= earlier for earlier, later in pairwise(raw)):
        raise CatalogError(reader.source, key, problem)
    return {"dunning_retry_days": tuple(raw)}


class _Reader:
    """Typed access to a parsed document, with errors naming the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def _get(self, table: Mapping[str, Any], key: str, name: str) -> Any:
        if name not in table:
            raise CatalogError(self.source, key, "is missing")
        return table[name]

    def table(
        self, parent: Mapping[str, Any], name: str, key: str | None = None
    ) -> Mapping[str, Any]:
        value = self._get(parent, key or name, name)
        if not isinstance(value, Mapping):
            raise CatalogError(self.source, key or name, "must be a table")
        return value

    def string(self, table: Mapping[str, Any], key: str, name: str) -> str:
        value = self._get(table, key, name)
        if not isinstance(value, str) or not value.strip():
            raise CatalogError(self.source, key, "must be a non-empty string")
        return value

    def code(self, table: Mapping[str, Any], key: str) -> str:
        value = self.string(table, key, "code")
        if not _CODE.match(value):
            raise CatalogError(self.source, key, "must be lower-case letters, digits and '-'")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, name: str) -> bool:
        value = self._get(table, key, name)
        if not isinstance(value, bool):
            raise CatalogError(self.source, key, "must be true or false")
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, name: str, minimum: int | None = None
    ) -> int:
        value = self._get(table, key, name)
        # bool is an int in Python; a price of `true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise CatalogError(self.source, key, "must be an integer")
        if minimum is not None and value < minimum:
            raise CatalogError(self.source, key, f"must be at least {minimum}")
        return int(value)

    def amount(self, table: Mapping[str, Any], key: str, name: str) -> int:
        value = self._get(table, key, name)
        if isinstance(value, float):
            raise CatalogError(
                self.source, key, "must be an integer amount of minor units, not a float"
            )
        amount = self.integer(table, key, name)
        if amount < 0:
            raise CatalogError(self.source, key, "must not be negative")
        return amount

    def positive(self, table: Mapping[str, Any], key: str, name: str) -> int:
        return self.integer(table, key, name, minimum=1)
