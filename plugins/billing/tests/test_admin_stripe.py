"""``/admin/billing``: a tenant admin connects Stripe, rotates webhook secrets, tests the key, configures the
Customer Portal — against localstripe (plus the FAKE_BILLING_PORTAL configurations of fake_stripe_portal.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from core import hookimpl
from core.context import system_context
from core.contracts import PluginInfo
from core.tables import Tenant, User
from core.testing import client_for, csrf_token, free_port, login
from plugins.billing.tables import StripeAccount
from plugins.billing.tests.conftest import billing_settings

KEY = "sk_test_" + "Q7wErTy9" * 3 + "abcd"
WHSEC = "whsec_" + "M2x9Kp4LzR8vT1nB" * 2
WHSEC_NEW = "whsec_" + "N3y0Lq5MaS9wU2oC" * 2
PAGE = "/admin/billing"


class Recorder:
    """Keeps every event (tenants enable ``recorder``)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def portal_plugin(self) -> Any:
        return PluginInfo("recorder", "Recorder", "1.0", "Records events for tests.")

    @hookimpl
    def portal_event(self, event: Any) -> None:
        self.events.append(event)

    def of(self, type_: str, tenant_id: Any) -> list[Any]:
        return [e for e in self.events if e.type == type_ and e.tenant_id == tenant_id]


@pytest.fixture(scope="module")
def stripe_url():
    """localstripe with the FAKE_BILLING_PORTAL routes (sessions and configurations), on 127.0.0.1."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_stripe_portal.py")), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/customers", auth=("sk_test_x", ""), timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(5)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def app(portal_app_factory, stripe_url, recorder):
    """The portal with new Stripe connections pointed at localstripe by the operator setting."""
    return await portal_app_factory(recorder, extra={"billing_pdf_workers": "0", "billing_stripe_api_base": stripe_url})


@pytest.fixture
def tenant_factory(make_tenant, app):
    async def factory(**overrides: Any) -> Any:
        tenant = await make_tenant(plugins=["billing", "recorder"],
                                   settings=billing_settings(provider="stripe", price_mode="plan", **overrides))
        await User.update({User.is_tenant_admin: True}).where(User.tenant == tenant.id,
                                                              User.email == tenant.email("admin"))
        await app.state.portal.directory.refresh()
        return tenant
    return factory


@asynccontextmanager
async def admin(app, tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, tenant.host) as client:
        assert (await login(client, tenant.email("admin"))).status_code == 302
        yield client


async def post(client: httpx.AsyncClient, path: str, data: dict[str, Any]) -> httpx.Response:
    token = await csrf_token(client, PAGE)
    return await client.post(path, data={"_csrf_token": token, **data})


async def account_row(tenant) -> dict[str, Any] | None:
    return await StripeAccount.select().where(StripeAccount.tenant == tenant.id).first()


def sign(payload: bytes, secret: str) -> str:
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


async def deliver(client: httpx.AsyncClient, secret: str) -> int:
    """A signed (ignored) event to the webhook: 200 when ``secret`` is one of the tenant's."""
    body = json.dumps({"id": f"evt_{time.time_ns()}", "type": "balance.available", "created": int(time.time()),
                       "data": {"object": {}}}).encode()
    response = await client.post("/billing/webhooks/stripe", content=body,
                                 headers={"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"})
    return response.status_code


def assert_no_secret(events: list[Any], *secrets: str) -> None:
    for event in events:
        dumped = json.dumps([event.before, event.after, getattr(event, "data", None)], default=str)
        for secret in secrets:
            assert secret not in dumped and secret[-12:] not in dumped, (event.type, dumped)


async def connect(client, key: str = KEY, webhook: str = WHSEC) -> httpx.Response:
    return await post(client, f"{PAGE}/connect", {"secret_key": key, "webhook_secret": webhook})


# -- access -----------------------------------------------------------------------------------------------

async def test_only_tenant_admins_of_this_tenant(app, tenant_factory):
    tenant, other = await tenant_factory(), await tenant_factory()
    async with client_for(app, tenant.host) as anonymous:
        response = await anonymous.get(PAGE)
        assert response.status_code == 302 and response.headers["location"].startswith("/login")
    async with client_for(app, tenant.host) as owner:
        assert (await login(owner, tenant.email("owner"))).status_code == 302
        response = await owner.get(PAGE)
        assert response.status_code == 403 and "administrators of this portal" in response.text
        token = await csrf_token(owner, "/account")
        for path, data in ((f"{PAGE}/connect", {"secret_key": KEY, "webhook_secret": WHSEC}),
                           (f"{PAGE}/disconnect", {"confirm": "disconnect"}), (f"{PAGE}/test", {})):
            response = await owner.post(path, data={"_csrf_token": token, **data})
            assert response.status_code == 403 and "administrators of this portal" in response.text, path
    assert await account_row(tenant) is None

    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        # the admin's session means nothing on the other tenant's host
        async with client_for(app, other.host) as foreign:
            foreign.cookies.set("portal_session", client.cookies.get("portal_session"))
            response = await foreign.get(PAGE)
            assert response.status_code == 302 and "/login" in response.headers["location"]
    async with admin(app, other) as client:
        page = await client.get(PAGE)
        assert page.status_code == 200 and "not connected" in page.text and KEY[-4:] not in page.text
    assert await account_row(other) is None and await account_row(tenant) is not None


async def test_console_navigation_links_the_page(app, tenant_factory):
    tenant = await tenant_factory()
    record = app.state.portal.directory.get(tenant.id)
    ctx = system_context(app.state.portal, record)
    results = await app.state.portal.plugins.call("portal_admin_nav_items", tenant=record, ctx=ctx)
    assert ("billing", "/admin/billing") in {(slug, item.href) for slug, items in results for item in items}
    async with admin(app, tenant) as client:
        for path in (PAGE, "/admin/branding"):
            page = await client.get(path)
            assert page.status_code == 200 and 'href="/admin/billing"' in page.text, path
        assert 'aria-current="page">Stripe<' in (await client.get(PAGE)).text


# -- connect ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "webhook", "field", "message"), [
    ("", WHSEC, "secret_key", "Paste your Stripe secret key"),
    ("pk_test_" + "a" * 24, WHSEC, "secret_key", "publishable key"),
    (WHSEC, WHSEC, "secret_key", "webhook signing secret"),
    ("sk_test_has spaces", WHSEC, "secret_key", "starts with sk_test_"),
    (KEY, "", "webhook_secret", "Paste the webhook signing secret"),
    (KEY, "sk_test_" + "a" * 20, "webhook_secret", "starts with whsec_"),
])
async def test_bad_keys_are_refused_with_field_errors(app, tenant_factory, recorder, key, webhook, field, message):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        response = await connect(client, key, webhook)
        assert response.status_code == 400
        assert f'id="{field}-error"' in response.text and message in response.text
        assert 'value="' + key + '"' not in response.text or not key  # never echoed back
    assert await account_row(tenant) is None
    assert recorder.of("billing.stripe.connected", tenant.id) == []


async def test_connect_stores_encrypted_and_shows_only_a_mask(app, tenant_factory, recorder, stripe_url):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        response = await connect(client)
        assert response.status_code == 302 and response.headers["location"] == f"{PAGE}?saved=connected"
        page = await client.get(response.headers["location"])
        assert "sk_test_…abcd" in page.text and "whsec_…" + WHSEC[-4:] in page.text
        assert KEY not in page.text and WHSEC not in page.text
        assert "test mode" in page.text and "Stripe connected" in page.text
        assert "billed through Stripe once linked" in page.text
        row = await account_row(tenant)
        assert KEY not in row["secret_key"] and WHSEC not in row["webhook_secrets"]
        assert app.state.portal.secrets.decrypt(row["secret_key"]) == KEY  # the CLI's format
        assert json.loads(app.state.portal.secrets.decrypt(row["webhook_secrets"])) == [WHSEC]
        assert row["api_base"] == stripe_url  # the operator's setting; tenants never choose it
        assert await deliver(client, WHSEC) == 200
        assert await deliver(client, WHSEC_NEW) == 400
        # replacing only the key keeps the webhook secret
        other_key = "rk_live_" + "Z" * 20 + "wxyz"
        assert (await connect(client, other_key, "")).status_code == 302
        page = await client.get(PAGE)
        assert "rk_live_…wxyz" in page.text and "live mode" in page.text and "restricted" in page.text
        assert await deliver(client, WHSEC) == 200
    events = recorder.of("billing.stripe.connected", tenant.id)
    assert len(events) == 2
    assert_no_secret(events, KEY, WHSEC, other_key)


async def test_forms_need_the_csrf_token(app, tenant_factory):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        await client.get(PAGE)
        response = await client.post(f"{PAGE}/connect", data={"secret_key": KEY, "webhook_secret": WHSEC})
        assert response.status_code == 403
    assert await account_row(tenant) is None


# -- webhook secret rotation ------------------------------------------------------------------------------

async def test_rotation_adds_a_second_secret_then_removes_the_old(app, tenant_factory, recorder):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/webhook-secrets", {"new_webhook_secret": "nope"})
        assert response.status_code == 400 and 'id="new_webhook_secret-error"' in response.text
        response = await post(client, f"{PAGE}/webhook-secrets", {"new_webhook_secret": WHSEC})
        assert response.status_code == 400 and "already stored" in response.text
        response = await post(client, f"{PAGE}/webhook-secrets", {"new_webhook_secret": WHSEC_NEW})
        assert response.status_code == 302
        assert await deliver(client, WHSEC) == 200 and await deliver(client, WHSEC_NEW) == 200

        page = (await client.get(PAGE)).text
        fingerprints = re.findall(r'name="fingerprint" value="([0-9a-f]+)"', page)
        assert len(fingerprints) == 2 and WHSEC_NEW not in page
        response = await post(client, f"{PAGE}/webhook-secrets/remove", {"fingerprint": fingerprints[0]})
        assert response.status_code == 302
        assert await deliver(client, WHSEC) == 400 and await deliver(client, WHSEC_NEW) == 200

        # the last secret stays; a stale fingerprint is explained
        row = await account_row(tenant)
        response = await post(client, f"{PAGE}/webhook-secrets/remove",
                              {"fingerprint": hashlib.sha256(WHSEC_NEW.encode()).hexdigest()[:16]})
        assert response.status_code == 400 and "only webhook secret" in response.text
        response = await post(client, f"{PAGE}/webhook-secrets/remove", {"fingerprint": fingerprints[0]})
        assert response.status_code == 400 and "no longer stored" in response.text
        assert (await account_row(tenant))["webhook_secrets"] == row["webhook_secrets"]
    events = recorder.of("billing.stripe.secret_rotated", tenant.id)
    assert [e.after["change"] for e in events] == ["added", "removed"]
    assert events[0].after["webhook_secrets"] == 2 and events[1].after["webhook_secrets"] == 1
    assert_no_secret(events, KEY, WHSEC, WHSEC_NEW)


async def test_keys_the_platform_can_no_longer_read_are_asked_again(app, tenant_factory, stripe_url):
    from core.db import utcnow
    from core.security import SecretBox

    tenant = await tenant_factory()
    old_box = SecretBox("a-previous-platform-key-" + "y" * 32)
    await StripeAccount.insert(StripeAccount(tenant=tenant.id, secret_key=old_box.encrypt(KEY),
                                             webhook_secrets=old_box.encrypt(json.dumps([WHSEC])), api_base=stripe_url,
                                             updated_at=utcnow()))
    async with admin(app, tenant) as client:
        page = await client.get(PAGE)
        assert page.status_code == 200 and 'data-testid="unreadable"' in page.text
        response = await post(client, f"{PAGE}/test", {})
        assert "can no longer be read" in response.text
        response = await connect(client, KEY, "")
        assert response.status_code == 400 and 'id="webhook_secret-error"' in response.text
        assert (await connect(client)).status_code == 302
        assert "Connection works." in (await post(client, f"{PAGE}/test", {})).text


# -- test connection --------------------------------------------------------------------------------------

async def test_test_connection_against_localstripe(app, tenant_factory, stripe_url):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        response = await post(client, f"{PAGE}/test", {})
        assert "Stripe is not connected yet" in response.text
        assert (await connect(client)).status_code == 302
        stripe.StripeClient(KEY, base_addresses={"api": stripe_url}).v1.customers.create(params={"name": "A"})
        response = await post(client, f"{PAGE}/test", {})
        assert response.status_code == 200 and "Connection works." in response.text
        assert "test mode" in response.text and "Stripe accepted the key" in response.text

        # a key localstripe refuses (it only accepts sk_ keys): Stripe's 401 in plain words
        assert (await connect(client, "rk_test_" + "w" * 24, "")).status_code == 302
        response = await post(client, f"{PAGE}/test", {})
        assert "Connection failed." in response.text and "did not accept this secret key" in response.text
        assert "Stripe said:" in response.text and "Unauthorized" in response.text

        # Stripe unreachable
        dead = f"http://127.0.0.1:{free_port()}"
        await StripeAccount.update({StripeAccount.api_base: dead}).where(StripeAccount.tenant == tenant.id)
        response = await post(client, f"{PAGE}/test", {})
        assert "Connection failed." in response.text and "could not reach Stripe" in response.text


# -- webhook URL ------------------------------------------------------------------------------------------

async def test_webhook_url_and_events_to_select(app, tenant_factory):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        page = (await client.get(PAGE)).text
    assert f'data-testid="webhook-url">https://{tenant.host}/billing/webhooks/stripe</code>' in page
    for event in ("customer.subscription.updated", "invoice.payment_failed", "payment_method.detached"):
        assert f"<code>{event}</code>" in page
    assert page.count('data-copy="') == 2


# -- Customer Portal --------------------------------------------------------------------------------------

PORTAL = {"payment_method_update": "1", "invoice_history": "1", "subscription_cancel": "1",
          "cancel_mode": "at_period_end", "headline": "Billing for Test Cloud",
          "privacy_policy_url": "https://legal.example.com/privacy", "terms_of_service_url": ""}


async def tenant_settings(tenant) -> dict[str, Any]:
    from core.db import load_json

    return load_json((await Tenant.select(Tenant.settings).where(Tenant.id == tenant.id).first())["settings"])


async def test_portal_configuration_is_validated_saved_and_pushed(app, tenant_factory, recorder, stripe_url):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        page = (await client.get(PAGE)).text
        assert "Connect Stripe first" in page
        assert (await connect(client)).status_code == 302
        before = await tenant_settings(tenant)

        for data, field, message in (
            ({"return_url": f"https://{tenant.host}/"}, "features", "at least one thing"),
            ({**PORTAL, "return_url": "https://evil.example.com/"}, "return_url", "own domains"),
            ({**PORTAL, "return_url": "javascript:alert(1)"}, "return_url", "full address"),
            ({**PORTAL, "return_url": f"https://{tenant.host}/", "headline": "x" * 61}, "headline", "60 characters"),
            ({**PORTAL, "return_url": f"https://{tenant.host}/", "privacy_policy_url": "ftp://x"},
             "privacy_policy_url", "https://"),
            ({**PORTAL, "return_url": f"https://{tenant.host}/", "cancel_mode": "whenever"}, "cancel_mode", "Choose"),
        ):
            response = await post(client, f"{PAGE}/portal", data)
            assert response.status_code == 400, data
            assert f'id="{field}-error"' in response.text and message in response.text, field
        assert await tenant_settings(tenant) == before
        assert (await account_row(tenant))["portal_configuration"] == ""

        response = await post(client, f"{PAGE}/portal", {**PORTAL, "return_url": f"https://{tenant.host}/billing"})
        assert response.status_code == 302 and response.headers["location"] == f"{PAGE}?saved=portal"
        config_id = (await account_row(tenant))["portal_configuration"]
        assert config_id.startswith("bpc_FAKE_BILLING_PORTAL_")
        saved = (await tenant_settings(tenant))["billing"]["customer_portal"]
        assert saved["configuration_id"] == config_id and saved["subscription_cancel"] is True
        assert (await tenant_settings(tenant))["billing"]["plans"] == before["billing"]["plans"]
        remote = stripe.StripeClient(KEY, base_addresses={"api": stripe_url}).v1.billing_portal.configurations
        pushed = remote.retrieve(config_id).to_dict()
        assert pushed["default_return_url"] == f"https://{tenant.host}/billing"
        assert pushed["features"]["payment_method_update"]["enabled"] is True
        assert pushed["features"]["subscription_cancel"]["mode"] == "at_period_end"
        assert pushed["features"]["subscription_update"]["enabled"] is False
        assert pushed["business_profile"]["headline"] == "Billing for Test Cloud"

        # saving again updates the same configuration; the page shows the saved choices
        response = await post(client, f"{PAGE}/portal", {"invoice_history": "1", "return_url": f"https://{tenant.host}/",
                                                         "cancel_mode": "immediately", "headline": ""})
        assert response.status_code == 302
        assert (await account_row(tenant))["portal_configuration"] == config_id
        pushed = remote.retrieve(config_id).to_dict()
        assert pushed["features"]["payment_method_update"]["enabled"] is False
        assert pushed["business_profile"]["headline"] is None
        page = (await client.get(response.headers["location"])).text
        assert "Customer Portal saved" in page and config_id in page
        assert 'name="payment_method_update" value="1" >' in page or 'name="payment_method_update" value="1">' in page
    events = recorder.of("billing.stripe.portal_configured", tenant.id)
    assert len(events) == 2 and events[0].after["configuration_id"] == config_id
    assert events[1].after["payment_method_update"] is False and "configuration_id" not in events[1].after
    assert_no_secret(events, KEY, WHSEC)


async def test_a_configuration_missing_in_stripe_is_made_again(app, tenant_factory):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        await StripeAccount.update({StripeAccount.portal_configuration: "bpc_deleted_in_stripe"}).where(
            StripeAccount.tenant == tenant.id)
        response = await post(client, f"{PAGE}/portal", {**PORTAL, "return_url": f"https://{tenant.host}/"})
        assert response.status_code == 302
    assert (await account_row(tenant))["portal_configuration"].startswith("bpc_FAKE_BILLING_PORTAL_")


async def test_plan_switching_sends_the_plans_stripe_products(app, tenant_factory, stripe_url):
    tenant = await tenant_factory()
    client_stripe = stripe.StripeClient(KEY, base_addresses={"api": stripe_url})
    products = {}
    for plan_id, amount in (("starter", 1900), ("team", 4900), ("business", 14900)):
        try:
            plan = client_stripe.v1.plans.create(params={"id": plan_id, "amount": amount, "currency": "eur",
                                                         "interval": "month", "product": {"name": plan_id.title()}})
        except stripe.StripeError:  # created by an earlier test of this module
            plan = client_stripe.v1.plans.retrieve(plan_id)
        products[plan_id] = plan.to_dict()["product"]
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/portal", {**PORTAL, "subscription_update": "1",
                                                         "return_url": f"https://{tenant.host}/"})
        assert response.status_code == 302, response.text
    config_id = (await account_row(tenant))["portal_configuration"]
    update = client_stripe.v1.billing_portal.configurations.retrieve(config_id).to_dict()["features"][
        "subscription_update"]
    assert update["enabled"] is True and update["default_allowed_updates"] == ["price"]
    assert {(p["product"], tuple(p["prices"])) for p in update["products"]} == {
        (products[p], (p,)) for p in ("starter", "team", "business")}


async def test_stripe_refusal_writes_nothing(app, tenant_factory, stripe_url):
    tenant = await tenant_factory(plans=[{"id": "solo", "name": "Solo", "price": 900, "currency": "EUR",
                                          "stripe_price_id": "missing_in_stripe"}])
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        before = await tenant_settings(tenant)
        response = await post(client, f"{PAGE}/portal", {**PORTAL, "subscription_update": "1",
                                                         "return_url": f"https://{tenant.host}/"})
        assert response.status_code == 400 and "Stripe said:" in response.text
    assert await tenant_settings(tenant) == before
    assert (await account_row(tenant))["portal_configuration"] == ""


async def test_plan_switching_needs_stripe_price_ids(app, tenant_factory):
    tenant = await tenant_factory(plans=[{"id": "solo", "name": "Solo", "price": 900, "currency": "EUR"}])
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/portal", {**PORTAL, "subscription_update": "1",
                                                         "return_url": f"https://{tenant.host}/"})
        assert response.status_code == 400 and 'id="subscription_update-error"' in response.text


# -- disconnect -------------------------------------------------------------------------------------------

async def test_disconnect_needs_confirmation(app, tenant_factory, recorder):
    tenant = await tenant_factory()
    async with admin(app, tenant) as client:
        response = await post(client, f"{PAGE}/disconnect", {"confirm": "disconnect"})
        assert response.status_code == 400 and "not connected yet" in response.text
        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/disconnect", {})
        assert response.status_code == 400 and 'id="confirm-error"' in response.text
        assert await account_row(tenant) is not None
        response = await post(client, f"{PAGE}/disconnect", {"confirm": "disconnect"})
        assert response.status_code == 302
        assert await account_row(tenant) is None
        assert await deliver(client, WHSEC) == 404
        page = (await client.get(response.headers["location"])).text
        assert "Stripe disconnected" in page and "not connected" in page
    events = recorder.of("billing.stripe.disconnected", tenant.id)
    assert len(events) == 1 and events[0].before["webhook_secrets"] == 1
    assert_no_secret(events, KEY, WHSEC)


# -- in Chromium ------------------------------------------------------------------------------------------

@pytest.mark.browser
async def test_connect_and_test_in_the_browser(app, tenant_factory, stripe_url):
    from core.testing import PASSWORD, artifact, headless_chromium, live_server

    tenant = await tenant_factory()
    async with live_server(app) as port, headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1440, "height": 1100})
        base = f"http://{tenant.host}:{port}"
        await page.goto(f"{base}/login?next={PAGE}")
        await page.fill("#email", tenant.email("admin"))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"**{PAGE}")
        await page.screenshot(path=artifact("billing-admin-stripe-empty.png"), full_page=True)

        await page.fill("#secret_key", KEY)
        await page.fill("#webhook_secret", WHSEC)
        await page.click("text=Connect Stripe")
        await page.wait_for_url("**saved=connected")
        await page.click("[data-testid=test-connection]")
        await page.wait_for_selector("[data-testid=connection-check]")
        assert "Connection works." in await page.inner_text("[data-testid=connection-check]")
        assert await page.inner_text("[data-testid=masked-key]") == "sk_test_…abcd"
        assert KEY not in await page.content()
        await page.click("button[data-copy='#webhook-url']")
        await page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
        assert await page.inner_text("#copy-status") == "Copied to the clipboard."
        assert await page.get_attribute("a[href='/admin/billing']", "aria-current") == "page"
        await page.screenshot(path=artifact("billing-admin-stripe.png"), full_page=True)
