"""The catalog is data: the default loads, and a bad one fails at start naming
the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from application.catalog_loader import DEFAULT_CATALOG_PATH, load_catalog
from domain.errors import CatalogError

DEFAULT_TOML = DEFAULT_CATALOG_PATH.read_text(encoding="utf-8")


def test_the_default_catalog_is_the_one_of_the_spec() -> None:
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    assert catalog.service_codes == (
        "crm",
        "salesiq",
        "campaigns",
        "desk",
        "projects",
        "social",
        "survey",
        "analytics",
    )
    assert [s.code for s in catalog.services if s.usable_in_bundle_during_trial] == [
        "crm",
        "salesiq",
    ]
    bundle = catalog.bundle
    assert (bundle.code, bundle.currency) == ("crmplus", "JPY")
    assert (bundle.trial_days, bundle.extension_days, bundle.max_extensions) == (30, 15, 1)
    assert bundle.extension_window_days == 7
    assert dict(bundle.prices) == {"monthly": 7_500, "yearly": 6_000}
    assert [(a.code, a.monthly_price) for a in bundle.add_ons] == [
        ("storage-10gb", 1_000),
        ("extra-portal", 3_000),
        ("advanced-analytics", 1_500),
    ]
    assert bundle.tax_rate_percent == 10
    assert catalog.standalone_url("desk", "o1") == "https://desk.suite.example/o1"
    assert catalog.bundle_url("desk", "o1") == "https://crmplus.suite.example/o1/desk"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def replaced(old: str, new: str) -> str:
    assert old in DEFAULT_TOML, old
    return DEFAULT_TOML.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            replaced('"survey", "analytics"]', '"survey", "analytics", "mail"]'),
            "bundle.services",
            "unknown service 'mail'",
        ),
        (replaced("monthly = 7500", "monthly = -7500"), "bundle.prices.monthly", "negative"),
        (replaced("yearly = 6000", "yearly = 6000.0"), "bundle.prices.yearly", "float"),
        (
            replaced("monthly_price = 3000", "monthly_price = 29.99"),
            "bundle.add_ons[1].monthly_price",
            "float",
        ),
        (replaced('currency = "JPY"\n', ""), "bundle.currency", "missing"),
        (replaced('currency = "JPY"', 'currency = "yen"'), "bundle.currency", "ISO 4217"),
        (
            replaced('code = "desk"', 'code = "crm"'),
            "services[3].code",
            "duplicate service 'crm'",
        ),
        (
            replaced("tax_rate_percent = 10", "tax_rate_percent = 110"),
            "bundle.tax_rate_percent",
            "between",
        ),
        (replaced("trial_days = 30", "trial_days = 0"), "bundle.trial_days", "at least 1"),
        (replaced("monthly = 7500", "monthly = true"), "bundle.prices.monthly", "integer"),
        (
            replaced("yearly = 6000", "yearly = 6000\nweekly = 2000"),
            "bundle.prices",
            "unknown billing period 'weekly'",
        ),
        (
            replaced(
                'standalone = "https://{service}.suite.example/{org_id}"',
                'standalone = "https://x"',
            ),
            "urls.standalone",
            "{service} and {org_id}",
        ),
        (
            replaced(
                'bundle = "https://crmplus.suite.example/{org_id}/{service}"',
                'bundle = "https://crmplus.suite.example/{org_id}/{service}/{region}"',
            ),
            "urls.bundle",
            "unknown placeholder",
        ),
        (
            replaced(
                'bundle = "https://crmplus.suite.example/{org_id}/{service}"',
                'bundle = "https://crmplus.suite.example/{org_id}/{service}/}"',
            ),
            "urls.bundle",
            "stray brace",
        ),
        (
            replaced(
                "usable_in_bundle_during_trial = true", 'usable_in_bundle_during_trial = "yes"'
            ),
            "services[0].usable_in_bundle_during_trial",
            "true or false",
        ),
        (DEFAULT_TOML + "\nthis is = not [toml\n", "(syntax)", ""),
    ],
    ids=[
        "unknown service in the bundle",
        "negative price",
        "float price",
        "float add-on price",
        "missing currency",
        "currency not ISO 4217",
        "duplicate service",
        "tax over 100 %",
        "trial of no days",
        "boolean price",
        "unknown billing period",
        "URL template without placeholders",
        "URL template with an unknown placeholder",
        "URL template with a stray brace",
        "flag that is not a boolean",
        "bad TOML syntax",
    ],
)
def test_a_bad_catalog_fails_naming_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as failed:
        load_catalog(path)
    assert failed.value.source == str(path)
    assert failed.value.key == key
    assert problem in failed.value.problem
    assert str(failed.value).startswith(f"{path}: {key}: ")


def test_a_missing_catalog_file_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(CatalogError) as failed:
        load_catalog(missing)
    assert failed.value.source == str(missing)
    assert failed.value.problem == "does not exist"


def test_suite_catalog_points_to_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheaper = write(tmp_path, replaced("monthly = 7500", "monthly = 5000"))
    monkeypatch.setenv("SUITE_CATALOG", str(cheaper))
    assert load_catalog().bundle.prices["monthly"] == 5_000


def test_without_suite_catalog_the_packaged_default_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUITE_CATALOG", raising=False)
    assert load_catalog().bundle.prices["monthly"] == 7_500


def test_a_bad_file_named_by_suite_catalog_fails_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = write(tmp_path, replaced('currency = "JPY"\n', ""))
    monkeypatch.setenv("SUITE_CATALOG", str(broken))
    with pytest.raises(CatalogError, match=r"bundle\.currency: is missing"):
        load_catalog()


def test_the_default_catalog_names_the_qualified_invoice_issuer() -> None:
    issuer = load_catalog(DEFAULT_CATALOG_PATH).issuer
    assert issuer.name == "株式会社スイートサンプル"
    assert issuer.name_en == "Suite Sample K.K."
    assert issuer.registration_number == "T1234567890123"
    assert issuer.invoice_prefix == "SS"
    assert issuer.address
    assert issuer.email == "billing@suite.example"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('"T1234567890123"', '"1234567890123"', "issuer.registration_number", "'T' followed"),
        ('"T1234567890123"', '"T123456789012"', "issuer.registration_number", "13 digits"),
        ('"T1234567890123"', '"T12345678901234"', "issuer.registration_number", "13 digits"),
        ('"T1234567890123"', '"T12345678901２3"', "issuer.registration_number", "13 digits"),
        ('invoice_prefix = "SS"', 'invoice_prefix = "s-s"', "issuer.invoice_prefix", "capital"),
        ('email = "billing@suite.example"', 'email = "billing"', "issuer.email", "email"),
        ('name = "株式会社スイートサンプル"\n', "", "issuer.name", "missing"),
        ("[issuer]", "[issuer_misspelt]", "issuer", "missing"),
    ],
    ids=[
        "registration number without T",
        "registration number too short",
        "registration number too long",
        "registration number with a full-width digit",
        "prefix not capitals",
        "email without a domain",
        "issuer without a name",
        "no issuer table",
    ],
)
def test_a_bad_issuer_fails_naming_the_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = write(tmp_path, replaced(old, new))
    with pytest.raises(CatalogError) as failed:
        load_catalog(path)
    assert failed.value.key == key
    assert problem in failed.value.problem
