"""The article's whole story clicked through in headless Chromium, in Japanese and English.

Debian's ``chromium`` driven by Playwright (never a downloaded browser), against
a real ``suitesub serve`` with the test clock pinned. Each step leaves a
screenshot under ``var/screenshots/`` and passes axe with no serious or critical
violation. At the end the database, the server's log and every request the
browser sent are searched for the card numbers typed: none may hold one.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from interface.auth import mint_token
from tests.console.fake_oidc import CLIENT_ID, CLIENT_SECRET, fake_oidc_provider
from tests.console.server import SECRET, RunningServer, running_server
from tests.receivers import Receiver, receiver

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
MASTERCARD = "5555 5555 5555 4444"
RENEWAL_DECLINED = "4000 0000 0000 0341"  # pays the upgrade, declines every later charge
SERIOUS = {"serious", "critical"}

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "locale": "en-US",
        "access": "Access CRM Plus",
        "refused": "Unify the super admin",
        "banner": "30 days left in your CRM Plus trial.",
        "decision": "Your CRM Plus trial has ended",
        "upgrade_now": "Upgrade now",
        "cancel": "Cancel the trial",
        "free": "These services will move to their free editions",
        "go_back": "Go back",
        "continue": "Continue",
        "declined": "The card was declined",
        "thanks": "Thank you: CRM Plus is active",
        "operator": "Sign in as the operator",
        "sign_out": "Sign out",
        "timeline": "CRM Plus trial started",
        "show": "Show",
        "changed": "What changed since the previous event",
        "check": "Check the chain",
        "holds": "The chain holds",
        "webhooks": "Webhook deliveries",
        "delivered": "Delivered",
        "manage": "Manage the contract",
        "renews": "Renews on",
        "cancel_contract": "Cancel at the end of the period",
        "scheduled": "Cancellation scheduled",
        "undo": "Keep CRM Plus (undo the cancellation)",
        "withdrawn": "The cancellation is withdrawn",
        "all_invoices": "All invoices",
        "invoices": "Invoices",
        "upgrade_invoice": "Upgrade to CRM Plus",
        "change_invoice": "Change of the plan",
        "change_plan": "Change the plan",
        "current_terms": "These are your current terms",
        "confirm_pay": "Confirm and pay {}",
        "changed_plan": "The plan has changed",
        "update_card": "Update the card",
    },
    "ja": {
        "locale": "ja-JP",
        "access": "アクセス CRM PLUS",
        "refused": "特権管理者を統一してください",
        "banner": "トライアル期限まであと 30 日です。",
        "decision": "CRM Plus のトライアル期限が過ぎました",
        "upgrade_now": "今すぐアップグレード",
        "cancel": "試用版のキャンセル",
        "free": "次のサービスは無料版に移行します",
        "go_back": "戻る",
        "continue": "続ける",
        "declined": "カードが拒否されました",
        "thanks": "ありがとうございます。CRM Plus の契約が始まりました",
        "operator": "オペレーターとしてサインイン",
        "sign_out": "サインアウト",
        "timeline": "CRM Plus のトライアルを開始しました",
        "show": "表示",
        "changed": "直前のイベントからの変化",
        "check": "改ざん検査",
        "holds": "チェーンは正常です",
        "webhooks": "Webhook の配信",
        "delivered": "配信済み",
        "manage": "契約の管理",
        "renews": "更新日",
        "cancel_contract": "期間の終わりに解約する",
        "scheduled": "解約予約済み",
        "undo": "CRM Plus を継続する(解約を取り消す)",
        "withdrawn": "解約を取り消しました",
        "all_invoices": "すべての請求書",
        "invoices": "請求書",
        "upgrade_invoice": "CRM Plus へのアップグレード",
        "change_invoice": "プラン変更",
        "change_plan": "プランを変更",
        "current_terms": "現在のご契約内容です",
        "confirm_pay": "確定して {} を支払う",
        "changed_plan": "プランを変更しました",
        "update_card": "カードの変更",
    },
}


def _playwright() -> Any:
    """Playwright's sync API, or a skip (a failure in CI) when the browser cannot run."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
        sync_playwright = None
    if not CHROMIUM.exists():
        missing.append("Debian's chromium (apt-get install -y chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path) as running:
        yield running


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (the server allows private URLs in this test)."""
    with receiver([]) as running:
        yield running


def wait_for_deliveries(server: RunningServer, endpoint: str, organization: str) -> list[Any]:
    """The organization's deliveries once none is pending (the server's webhooks thread
    follows the log and delivers on its own: a bounded wait for that state, not a timing)."""
    deadline = time.monotonic() + 30
    while True:
        deliveries: list[Any] = server.call(
            "GET", f"/v1/webhook-endpoints/{endpoint}/deliveries?organization_id={organization}"
        )["deliveries"]
        if deliveries and all(d["status"] == "delivered" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.2)


@pytest.fixture
def chromium() -> Iterator[Any]:
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Story:
    """One browser tab walking the story: a screenshot and an axe check per step."""

    def __init__(self, page: Any, language: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.language = language
        self.axe = Axe()
        self.step = 0
        for old in SCREENSHOTS.glob(f"{language}-[0-9][0-9]-*.png"):  # an earlier run's steps
            old.unlink()
        self.sent: list[str] = []
        page.on(
            "request", lambda request: self.sent.append(request.url + (request.post_data or ""))
        )

    def check(self, name: str) -> None:
        self.step += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=str(SCREENSHOTS / f"{self.language}-{self.step:02d}-{name}.png"), full_page=True
        )
        results = self.axe.run(self.page)
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in SERIOUS
        ]
        assert serious == [], f"{name}: {serious}"


def follow(page: Any, target: Any) -> None:
    """Click a link or a form's button that loads another page, and return once that page
    has loaded. Playwright's click returns when the navigation it started has committed,
    before the new document is parsed (under load, its body was still empty), so reading
    the page, a screenshot, axe, or filling its fields before its console.js is attached
    would race it; this waits for the navigation the click starts, to its load event."""
    with page.expect_navigation(wait_until="load"):
        target.click()


def download_pdf(page: Any, link: Any) -> str:
    """Click a PDF link as a person would; the downloaded file's text."""
    with page.expect_download() as started:
        link.click()
    download = started.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF-")
    assert download.suggested_filename.endswith(".pdf")
    return "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


def register_the_article_organization(server: RunningServer) -> str:
    organization: str = server.call(
        "POST",
        "/v1/organizations",
        {"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
    )["id"]
    plans = {
        "crm": (120_000, "2026-01-01", "2027-01-01", "u-alice"),
        "desk": (36_000, "2026-04-01", "2027-04-01", "u-bob"),
    }
    for service, (paid, start, end, super_admin) in plans.items():
        server.call(
            "PUT",
            f"/v1/organizations/{organization}/services/{service}/subscription",
            {
                "seats": 5,
                "billing_period": "yearly",
                "amount_paid": paid,
                "period_start": start,
                "period_end": end,
                "super_admin": super_admin,
                "admins": [],
            },
        )
    return organization


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_article_story_in_the_browser(
    server: RunningServer, chromium: Any, hooks: Receiver, language: str
) -> None:
    words = WORDS[language]
    assert f"console:         {server.base_url}/console/" in server.log.read_text()
    endpoint = server.call(
        "POST",
        "/v1/webhook-endpoints",
        {"url": hooks.url, "events": ["*"], "description": "crm sync"},
    )
    hooks.secrets.append(endpoint["secret"])
    organization = register_the_article_organization(server)
    context = chromium.new_context(locale=words["locale"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    story = Story(page, language)
    console = f"{server.base_url}/console"

    # Sign in as CRM's super admin (development sign-in).
    page.goto(f"{console}/sign-in")
    story.check("sign-in")
    follow(page, page.get_by_role("link", name="Acme KK"))
    follow(page, page.get_by_role("button", name="u-alice", exact=True))
    if language == "en":  # an organization in Japan is shown in Japanese: switch
        follow(page, page.get_by_role("button", name="English"))
    story.check("home")

    # 2. The red button, refused: Desk's super admin is someone else.
    follow(page, page.get_by_role("button", name=words["access"]))
    assert words["refused"] in page.content()
    assert "u-bob" in page.locator("table.rights").inner_text()
    story.check("refused")

    # They fix it as the page says (Desk's super admin unifies), and press again.
    bob = mint_token(SECRET, user_id="u-bob", organization_id=organization)
    server.call(
        "PUT",
        f"/v1/organizations/{organization}/services/desk/admins",
        {"super_admin": "u-alice", "admins": ["u-bob"]},
        token=bob,
    )
    page.goto(f"{console}/orgs/{organization}/")
    follow(page, page.get_by_role("button", name=words["access"]))
    assert words["banner"] in page.locator(".trial-banner").inner_text()
    story.check("trial-banner")

    # 3. The trial ends: the decision screen.
    server.call("POST", "/v1/test-clock", {"advance_days": 31})
    page.reload()
    assert words["decision"] in page.content()
    story.check("decision")
    follow(page, page.get_by_role("link", name=words["cancel"]))
    assert words["free"] in page.content()
    assert page.locator("ul.downgraded li").count() == 6
    story.check("cancel-preview")
    follow(page, page.get_by_role("link", name=words["go_back"]))

    # 4. Upgrade: the live order summary is the API's quote.
    follow(page, page.get_by_role("link", name=words["upgrade_now"]))
    page.get_by_label(re.compile("Yearly|毎年")).check()
    page.locator("#seats").fill("10")
    page.locator("#add-on-storage-10gb").fill("2")
    alice = mint_token(SECRET, user_id="u-alice", organization_id=organization)
    quote = server.call(
        "POST",
        f"/v1/organizations/{organization}/upgrade/quote",
        {
            "billing_period": "yearly",
            "seats": 10,
            "add_ons": [{"code": "storage-10gb", "quantity": 2}],
            "billing_contact": {
                "company_name": "Acme KK",
                "country": "JP",
                "email": "billing@acme.example",
            },
        },
        token=alice,
    )
    page.wait_for_selector(f'[data-total="{quote["total"]}"]')  # swapped in by console.js
    page.locator("details.credit-info summary").click()  # the "i"
    credits = page.locator("table.credits").inner_text()
    for credit in quote["credits"]:
        assert f"¥{credit['amount_paid']:,}" in credits
        assert f"¥{credit['amount']:,}" in credits
    story.check("upgrade-summary")
    follow(page, page.get_by_role("button", name=words["continue"]))

    # Company details and the sandbox card field: a declined card, then Visa.
    page.locator("#email").fill("billing@acme.example")
    page.locator("#card-number").fill(DECLINED)
    page.locator("#card-expiry").fill("12/30")
    page.locator("#card-cvc").fill("123")
    story.check("payment")
    follow(page, page.locator("#payment-form button[type=submit]"))
    assert words["declined"] in page.content()
    story.check("declined")
    page.locator("#email").fill("billing@acme.example")
    page.locator("#card-number").fill(VISA)
    page.locator("#card-expiry").fill("12/30")
    page.locator("#card-cvc").fill("123")
    follow(page, page.locator("#payment-form button[type=submit]"))
    assert words["thanks"] in page.content(), page.locator("main").inner_text()
    assert "4242" in page.locator(".receipt").inner_text()
    assert f"¥{quote['total']:,}" in page.locator(".receipt").inner_text()
    story.check("receipt")
    access = server.call("GET", f"/v1/organizations/{organization}/access")
    assert access["bundle"]["state"] == "active"

    # 5. After the upgrade: the contract; cancel at the period's end, and undo it.
    follow(page, page.get_by_role("link", name=words["manage"]))
    contract = access["bundle"]["contract"]
    terms = page.locator("section.contract").inner_text()
    assert words["renews"] in terms
    assert "2027" in page.locator("dd.renewal").inner_text()
    assert page.locator("dd.seats").inner_text() == str(contract["seats"])
    assert page.locator("dd.credit-balance").inner_text() == f"¥{contract['credit_balance']:,}"
    assert "4242" in page.locator("dd.card").inner_text()
    story.check("contract")
    follow(page, page.get_by_role("button", name=words["cancel_contract"]))
    assert words["scheduled"] in page.content()
    after = server.call("GET", f"/v1/organizations/{organization}/access")
    assert after["bundle"]["contract"]["cancel_at_period_end"] is True
    story.check("contract-cancelled")
    follow(page, page.get_by_role("button", name=words["undo"]))
    assert words["withdrawn"] in page.content()
    after = server.call("GET", f"/v1/organizations/{organization}/access")
    assert after["bundle"]["contract"]["cancel_at_period_end"] is False

    # Change the plan: two more users, priced live (the API's quote), confirmed.
    follow(page, page.get_by_role("link", name=words["change_plan"], exact=True))
    assert words["current_terms"] in page.locator("#change-summary").inner_text()
    story.check("change-plan")
    page.locator("#seats").fill("12")
    change_quote = server.call(
        "POST",
        f"/v1/organizations/{organization}/subscription/change/quote",
        {"seats": 12},
        token=alice,
    )
    page.wait_for_selector(f'[data-change-total="{change_quote["total"]}"]')  # console.js
    assert change_quote["total"] > 0
    story.check("change-quote")
    confirm = words["confirm_pay"].format(f"¥{change_quote['total']:,}")
    follow(page, page.get_by_role("button", name=confirm))
    assert words["changed_plan"] in page.locator(".flash").inner_text()
    assert page.locator("dd.seats").inner_text() == "12"
    story.check("plan-changed")

    # Update the card: the sandbox field again, a declined card, then Mastercard.
    follow(page, page.get_by_role("link", name=words["update_card"], exact=True))
    page.locator("#card-number").fill(DECLINED)
    story.check("update-card")
    follow(page, page.locator("#card-form button[type=submit]"))
    assert words["declined"] in page.content()
    page.locator("#card-number").fill(MASTERCARD)
    page.locator("#card-expiry").fill("12/30")
    page.locator("#card-cvc").fill("123")
    follow(page, page.locator("#card-form button[type=submit]"))
    assert "4444" in page.locator(".flash").inner_text()
    assert "Mastercard" in page.locator("dd.card").inner_text()
    story.check("card-updated")
    card = server.call("GET", f"/v1/organizations/{organization}/subscription")["contract"]
    assert card["payment_method"] == {"brand": "mastercard", "last4": "4444"}

    # The invoices, newest first (the change's, then the upgrade's), and their PDFs.
    invoices = server.call("GET", f"/v1/organizations/{organization}/invoices")["invoices"]
    assert [i["kind"] for i in invoices] == ["change", "upgrade"]
    follow(page, page.get_by_role("link", name=words["all_invoices"]))
    rows = page.locator("table.invoices tbody tr")
    assert rows.count() == len(invoices)
    for row, invoice, kind in zip(
        (rows.nth(0), rows.nth(1)), invoices, ("change_invoice", "upgrade_invoice"), strict=True
    ):
        shown = row.inner_text()
        assert invoice["number"] in shown
        assert words[kind] in shown
        assert f"¥{invoice['total']:,}" in shown
    story.check("invoices")
    for row, invoice in zip((rows.nth(0), rows.nth(1)), invoices, strict=True):
        downloaded = download_pdf(page, row.get_by_role("link"))
        assert invoice["number"] in downloaded
        assert f"¥{invoice['total']:,}" in downloaded

    # Support: the directory, the timeline, the moment, the chain.
    follow(page, page.get_by_role("button", name=words["sign_out"]))
    follow(page, page.get_by_role("button", name=words["operator"]))
    story.check("directory")
    follow(page, page.get_by_role("link", name="Acme KK"))
    assert words["timeline"] in page.content()
    story.check("organization")
    page.locator("#as-of").fill("2026-12-01T00:00")
    follow(page, page.get_by_role("button", name=words["show"]))
    assert words["changed"] in page.content()
    story.check("as-of")
    follow(page, page.get_by_role("link", name=words["check"]))
    assert words["holds"] in page.content()
    story.check("chain-check")
    follow(page, page.get_by_role("link", name="Acme KK"))
    deliveries = wait_for_deliveries(server, endpoint["id"], organization)
    follow(page, page.get_by_role("link", name=words["webhooks"]))
    table = page.locator("table.deliveries").inner_text()
    assert table.count(words["delivered"]) == len(deliveries)
    assert "HTTP 200" in table
    assert set(hooks.ids_of(organization)) >= {d["event_id"] for d in deliveries}
    story.check("webhook-deliveries")
    follow(page, page.get_by_role("link", name="Acme KK"))
    follow(page, page.get_by_role("link", name=words["invoices"], exact=True))
    assert page.locator("table.invoices tbody tr").count() == len(invoices)
    story.check("support-invoices")
    downloaded = download_pdf(
        page, page.locator("table.invoices tbody tr").first.get_by_role("link")
    )
    assert invoices[0]["number"] in downloaded
    context.close()

    # The server only ever received tokens: no card number anywhere it wrote or was sent.
    stored = server.stored_bytes()
    sent = "\n".join(story.sent)
    for number in (VISA, DECLINED, MASTERCARD):
        for spelling in (number, number.replace(" ", ""), number.replace(" ", "+")):
            assert spelling.encode() not in stored
            assert spelling not in sent
    assert b"UpgradePurchased" in stored  # the search did read the store that recorded it
    assert "payment_token=tok_visa" in sent  # what the browser sent instead
    assert "payment_token=tok_mastercard" in sent  # the update-card form's token


PAST_DUE_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "upgrade": "Upgrade",
        "failed": "The renewal payment failed",
        "state": "Payment past due",
        "pay_now": "Update the card and pay now",
        "save_and_pay": "Save the card and pay now",
        "paid": "The renewal was paid with the new card: the payment is no longer past due.",
        "active": "Active",
        "renewal_invoice": "Renewal",
    },
    "ja": {
        "upgrade": "アップグレード",
        "failed": "更新の支払いに失敗しました",
        "state": "支払い遅延中",
        "pay_now": "カードを変更して今すぐ支払う",
        "save_and_pay": "カードを保存して今すぐ支払う",
        "paid": "新しいカードで更新料金をお支払いいただきました。支払い遅延は解消されました。",
        "active": "契約中",
        "renewal_invoice": "契約更新",
    },
}


def tokens_posted(sent: list[str]) -> list[str]:
    """The payment tokens the browser's requests carried, in order."""
    return [m for r in sent for m in re.findall(r"payment_token=(tok_[A-Za-z_]+)", r)]


@pytest.mark.parametrize("language", ["ja", "en"])
def test_a_declined_renewal_is_paid_with_a_new_card_in_the_browser(
    server: RunningServer, chromium: Any, language: str
) -> None:
    """SPEC §11's dunning story in the browser: a card that pays the upgrade but
    declines the renewal, the renewal run by ``suitesub renew`` at the test clock,
    the contract page past due with its link, a good card paying the renewal."""
    words, past = WORDS[language], PAST_DUE_WORDS[language]
    organization = register_the_article_organization(server)
    bob = mint_token(SECRET, user_id="u-bob", organization_id=organization)
    server.call(  # Desk's super admin unifies, so u-alice may start the trial
        "PUT",
        f"/v1/organizations/{organization}/services/desk/admins",
        {"super_admin": "u-alice", "admins": ["u-bob"]},
        token=bob,
    )
    context = chromium.new_context(locale=words["locale"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    story = Story(page, f"{language}-past-due")
    console = f"{server.base_url}/console"
    page.goto(f"{console}/sign-in")
    follow(page, page.get_by_role("link", name="Acme KK"))
    follow(page, page.get_by_role("button", name="u-alice", exact=True))
    if language == "en":  # an organization in Japan is shown in Japanese: switch
        follow(page, page.get_by_role("button", name="English"))
    follow(page, page.get_by_role("button", name=words["access"]))
    assert words["banner"] in page.locator(".trial-banner").inner_text()

    # Buy CRM Plus with the card whose later charges are declined.
    follow(page, page.get_by_role("link", name=past["upgrade"], exact=True))
    page.get_by_label(re.compile("Yearly|毎年")).check()
    page.locator("#seats").fill("10")
    follow(page, page.get_by_role("button", name=words["continue"]))
    page.locator("#email").fill("billing@acme.example")
    page.locator("#card-number").fill(RENEWAL_DECLINED)
    page.locator("#card-expiry").fill("12/30")
    page.locator("#card-cvc").fill("123")
    follow(page, page.locator("#payment-form button[type=submit]"))
    assert words["thanks"] in page.content(), page.locator("main").inner_text()
    assert "0341" in page.locator(".receipt").inner_text()
    follow(page, page.get_by_role("link", name=words["manage"]))
    assert page.locator("#past-due-title").count() == 0
    story.check("contract")

    # A year later the worker's renewal run charges the card on file: declined.
    server.call("POST", "/v1/test-clock", {"advance_days": 366})
    assert "payment failed: 1" in server.suitesub("renew")
    contract = server.call("GET", f"/v1/organizations/{organization}/subscription")["contract"]
    assert contract["past_due_since"] is not None
    page.reload()
    assert page.locator("#past-due-title").inner_text() == past["failed"]
    assert page.locator("p.state .badge").inner_text() == past["state"]
    story.check("past-due")

    # The way forward: the page's link to the card; a good sandbox card pays the renewal.
    follow(page, page.get_by_role("link", name=past["pay_now"], exact=True))
    page.locator("#card-number").fill(VISA)
    page.locator("#card-expiry").fill("12/30")
    page.locator("#card-cvc").fill("123")
    story.check("update-card")
    follow(page, page.get_by_role("button", name=past["save_and_pay"]))
    assert past["paid"] in page.locator(".flash").inner_text()
    assert page.locator("#past-due-title").count() == 0
    assert page.locator("p.state .badge").inner_text() == past["active"]
    assert "4242" in page.locator("dd.card").inner_text()
    access = server.call("GET", f"/v1/organizations/{organization}/access")
    assert access["bundle"]["state"] == "active"
    assert access["bundle"]["contract"].get("past_due_since") is None
    invoices = server.call("GET", f"/v1/organizations/{organization}/invoices")["invoices"]
    assert [i["kind"] for i in invoices] == ["renewal", "upgrade"]
    newest = page.locator("table.invoices tbody tr").first.inner_text()
    assert invoices[0]["number"] in newest
    assert past["renewal_invoice"] in newest
    assert f"¥{invoices[0]['total']:,}" in newest
    story.check("renewal-paid")
    context.close()

    # Only tokens reached the server: the declined card's, then Visa's; no card number.
    assert tokens_posted(story.sent) == ["tok_visa_renewalDeclined", "tok_visa"]
    stored = server.stored_bytes()
    sent = "\n".join(story.sent)
    for number in (RENEWAL_DECLINED, VISA):
        for spelling in (number, number.replace(" ", ""), number.replace(" ", "+")):
            assert spelling.encode() not in stored
            assert spelling not in sent
    assert b"BundleRenewed" in stored  # the search did read the store that recorded it


PRODUCTION_WORDS = {
    "en": {"locale": "en-US", "button": "Sign in with Acme ID", "paste": "Paste your token"},
    "ja": {
        "locale": "ja-JP",
        "button": "Acme ID でサインイン",
        "paste": "トークンを貼り付け",
    },
}


@pytest.mark.parametrize("language", ["ja", "en"])
def test_production_signs_in_with_the_identity_provider_in_the_browser(
    tmp_path: Path, chromium: Any, language: str
) -> None:
    """SUITE_ENV=production: no development sign-in; the provider (a fake one on
    127.0.0.1) signs the user in through the browser, PKCE and all."""
    words = PRODUCTION_WORDS[language]
    with fake_oidc_provider() as provider:
        environment = {
            "SUITE_ENV": "production",
            "SUITE_OIDC_ISSUER": provider.issuer,
            "SUITE_OIDC_CLIENT_ID": CLIENT_ID,
            "SUITE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "SUITE_OIDC_NAME": "Acme ID",
        }
        with running_server(tmp_path, environment) as server:
            organization = register_the_article_organization(server)
            provider.user = {"sub": "u-alice", "org": organization}
            context = chromium.new_context(
                locale=words["locale"], viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            story = Story(page, f"{language}-production")
            page.goto(f"{server.base_url}/console/sign-in")
            assert words["paste"] in page.content()
            assert "Acme KK" not in page.content()  # no development sign-in here
            story.check("sign-in")
            follow(page, page.get_by_role("link", name=words["button"]))
            page.wait_for_url(f"{server.base_url}/console/orgs/{organization}/")
            assert "u-alice" in page.locator(".who").inner_text()
            [cookie] = [c for c in context.cookies() if c["name"] == "suitesub_console"]
            assert cookie["httpOnly"] is True
            assert cookie["secure"] is True
            assert cookie["sameSite"] == "Lax"
            if language == "en":  # an organization in Japan is shown in Japanese: switch
                follow(page, page.get_by_role("button", name="English"))
            story.check("signed-in-by-the-provider")
            [(form, _headers)] = provider.token_requests
            assert form["code_verifier"]
            context.close()
