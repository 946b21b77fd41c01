"""``/admin/billing``: a tenant admin connects Stripe, rotates webhook secrets, tests the key, configures the
Customer Portal — against localstripe (plus the FAKE_BILLING_PORTAL configurations of fake_stripe_portal.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import stripe

from core.context import system_context
from core.tables import Tenant, User
from core.testing import EventRecorder, client_for, csrf_token, free_port, login
from plugins.billing.tables import StripeAccount
from plugins.billing.tests.conftest import billing_settings, serve_localstripe

KEY = "sk_test_" + "Q7wErTy9" * 3 + "abcd"
WHSEC = "whsec_" + "M2x9Kp4LzR8vT1nB" * 2
WHSEC_NEW = "whsec_" + "N3y0Lq5MaS9wU2oC" * 2
PAGE = "/admin/billing"


@pytest.fixture(scope="module")
def stripe_url():
    """localstripe with the FAKE_BILLING_PORTAL routes (sessions and configurations), on 127.0.0.1."""
    yield from serve_localstripe("fake_stripe_portal.py")


@pytest.fixture
def recorder() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
async def app(portal_app_factory, stripe_url, recorder):
    """The portal with new Stripe connections pointed at localstripe by the operator setting."""
    return await portal_app_factory(recorder, extra={"billing_pdf_workers": "0", "billing_stripe_api_base": stripe_url})


@pytest.fixture
def tenant_factory(make_tenant, app):
    async def factory(**overrides: Any) -> Any:
        tenant = await make_tenant(plugins=["billing", "recorder"],
                                   settings=billing_settings(**{"provider": "stripe", "price_mode": "plan",
                                                                **overrides}))
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


# -- billing through Stripe: the provider switch ----------------------------------------------------------

async def test_switching_billing_to_stripe_and_back(app, tenant_factory, recorder, stripe_url):
    tenant = await tenant_factory(provider="local")
    async with admin(app, tenant) as client:
        page = (await client.get(PAGE)).text
        assert 'data-testid="provider-state">off<' in page and "Connect Stripe first." in page
        assert 'data-testid="provider-on"' not in page
        response = await post(client, f"{PAGE}/provider", {"provider": "stripe"})
        assert response.status_code == 400 and 'id="provider-error"' in response.text
        assert "not connected yet" in response.text

        # a key Stripe refuses: the connection test runs on switching and nothing changes
        assert (await connect(client, "rk_test_" + "w" * 24)).status_code == 302
        response = await post(client, f"{PAGE}/provider", {"provider": "stripe"})
        assert response.status_code == 400 and 'id="provider-error"' in response.text
        assert "connection test failed" in response.text and "did not accept this secret key" in response.text
        assert (await tenant_settings(tenant))["billing"]["provider"] == "local"

        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/provider", {"provider": "paypal"})
        assert response.status_code == 400 and "Choose Stripe" in response.text
        response = await post(client, f"{PAGE}/provider", {"provider": "stripe"})
        assert response.status_code == 302 and "saved=provider-stripe" in response.headers["location"]
        stored = (await tenant_settings(tenant))["billing"]
        assert stored["provider"] == "stripe" and stored["plans"]  # the rest of the section is kept
        page = (await client.get(response.headers["location"])).text  # the tenant snapshot follows at once
        assert "now billed through Stripe" in page and 'data-testid="provider-state">on<' in page
        assert "billed through Stripe once linked" in page and 'data-testid="provider-off"' in page
        assert app.state.portal.directory.get(tenant.id).settings["billing"]["provider"] == "stripe"

        response = await post(client, f"{PAGE}/provider", {"provider": "stripe"})
        assert "saved=provider-unchanged" in response.headers["location"]
        response = await post(client, f"{PAGE}/provider", {"provider": "local"})
        assert "saved=provider-local" in response.headers["location"]
        page = (await client.get(response.headers["location"])).text
        assert "Billing is back on your portal" in page and 'data-testid="provider-state">off<' in page
        # switching off needs no connection: after a disconnect the admin can still move back
        await post(client, f"{PAGE}/provider", {"provider": "stripe"})
        assert (await post(client, f"{PAGE}/disconnect", {"confirm": "disconnect"})).status_code == 302
        page = (await client.get(PAGE)).text
        assert "Billing is set to Stripe but Stripe is not connected" in page
        assert (await post(client, f"{PAGE}/provider", {"provider": "local"})).status_code == 302
    events = recorder.of("billing.provider.changed", tenant.id)
    assert [(e.before, e.after) for e in events] == [
        ({"provider": "local"}, {"provider": "stripe"}), ({"provider": "stripe"}, {"provider": "local"}),
        ({"provider": "local"}, {"provider": "stripe"}), ({"provider": "stripe"}, {"provider": "local"})]
    assert (await tenant_settings(tenant))["billing"]["provider"] == "local"


# -- linking organizations to Stripe customers ------------------------------------------------------------

async def add_org(app, tenant, name: str, profile: str | None = None, org_id: Any = None) -> dict[str, Any]:
    """An organization of ``tenant`` (or its first one) seeded with billing details like the demo's."""
    import uuid

    from core.context import CurrentOrganization
    from core.db import utcnow
    from core.tables import Organization
    from plugins.billing.seed import PROFILES, seed_organization

    if org_id is None:
        org_id = uuid.uuid4()
        await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug=f"{name.lower()}-{org_id.hex[:6]}",
                                               name=name, created_at=utcnow()))
    org = await Organization.select().where(Organization.id == org_id).first()
    if profile:
        PROFILES.setdefault(org["slug"], PROFILES[profile])
    runtime = app.state.portal
    ctx = system_context(runtime, runtime.directory.get(tenant.id),
                         organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
    await seed_organization(ctx, org)
    return org


def stripe_customers_of(stripe_url: str, org_id: Any) -> list[dict[str, Any]]:
    """The customers localstripe holds for one organization (its store is shared by every key)."""
    remote = stripe.StripeClient(KEY, base_addresses={"api": stripe_url})
    return [c.to_dict() for c in remote.v1.customers.list(params={"limit": 100}).auto_paging_iter()
            if (c.to_dict().get("metadata") or {}).get("portal_organization") == str(org_id)]


async def customer_row(org_id: Any) -> dict[str, Any]:
    from plugins.billing.tables import BillingCustomer

    return await BillingCustomer.select().where(BillingCustomer.organization == org_id).first()


async def test_linking_creates_one_customer_even_when_posted_twice(app, tenant_factory, recorder, stripe_url):
    tenant = await tenant_factory(provider="local")
    first = await add_org(app, tenant, "Rocket", "rocket-labs")
    second = await add_org(app, tenant, "Cypress", "cypress-creek")
    async with admin(app, tenant) as client:
        page = (await client.get(PAGE)).text
        assert page.count('data-state="unlinked"') == 3 and "Create Stripe customer" not in page  # not connected
        assert (await connect(client)).status_code == 302
        page = (await client.get(PAGE)).text
        assert page.count("Create Stripe customer") == 3 and "Link all 3 not linked" in page

        # two clicks in a row
        for expected in ("saved=linked", "saved=already-linked"):
            response = await post(client, f"{PAGE}/link", {"organization": str(first["id"])})
            assert response.status_code == 302 and expected in response.headers["location"]
        # two requests at once (a double click, two tabs)
        token = await csrf_token(client, PAGE)
        both = await asyncio.gather(*(client.post(f"{PAGE}/link", data={"_csrf_token": token,
                                                                       "organization": str(second["id"])})
                                      for _ in range(2)))
        assert sorted(r.headers["location"].split("?")[1].split("#")[0] for r in both) == [
            "saved=already-linked", "saved=linked"]
        page = (await client.get(PAGE)).text
        assert "Stripe customer created and linked." not in page and page.count('data-state="linked"') == 2

    for org, company, email in ((first, "Rocket Labs GmbH", f"finance@{first['slug']}.example"),
                                (second, "Cypress Creek Industries, Inc.", f"finance@{second['slug']}.example")):
        remote = stripe_customers_of(stripe_url, org["id"])
        assert len(remote) == 1, remote
        assert (await customer_row(org["id"]))["stripe_customer_id"] == remote[0]["id"]
        assert remote[0]["name"] == company and remote[0]["email"] == email
        assert remote[0]["metadata"]["portal_tenant"] == tenant.slug
        assert remote[0]["address"]["country"] in ("DE", "US") and remote[0]["address"]["line1"]
        assert f'<code class="value">{remote[0]["id"]}</code>' in page
    assert stripe_customers_of(stripe_url, first["id"])[0]["metadata"]["po_number"] == "PO-2025-118"
    events = recorder.of("billing.customer.linked", tenant.id)
    assert sorted(e.organization_id for e in events) == sorted([first["id"], second["id"]])
    assert {e.after["stripe_customer_id"] for e in events} == {
        (await customer_row(o["id"]))["stripe_customer_id"] for o in (first, second)}


async def test_link_all_skips_contract_customers_and_linked_ones(app, tenant_factory, recorder, stripe_url):
    tenant = await tenant_factory(provider="local")
    main = await add_org(app, tenant, "Main", org_id=tenant.org_id)
    contract = await add_org(app, tenant, "Springfield", "springfield-power")
    anvil = await add_org(app, tenant, "Anvil", "anvil-works")
    bare = await add_org(app, tenant, "Bare")  # no billing row of its own yet: made on linking
    from plugins.billing.tables import BillingCustomer
    await BillingCustomer.delete().where(BillingCustomer.organization == bare["id"])
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        response = await post(client, f"{PAGE}/link", {"organization": str(contract["id"])})
        assert response.status_code == 400 and "contract terms" in response.text
        assert (await post(client, f"{PAGE}/link", {"organization": str(main["id"])})).status_code == 302
        page = (await client.get(PAGE)).text
        assert f'data-org="{contract["slug"]}" data-state="contract"' in page
        assert "Link all 2 not linked" in page

        response = await post(client, f"{PAGE}/link", {"all": "1"})
        assert response.status_code == 302 and "linked=2&remaining=0" in response.headers["location"]
        page = (await client.get(response.headers["location"])).text
        assert "2 Stripe customer(s) created and linked." in page and 'data-testid="link-all"' not in page
        counts = re.sub(r"\s+", " ", re.search(r'data-testid="link-counts">(.*?)</p>', page, re.S).group(1))
        assert "<strong>3</strong> linked" in counts and "<strong>0</strong> not linked" in counts
        assert "<strong>1</strong> on contract" in counts
        response = await post(client, f"{PAGE}/link", {"all": "1"})
        assert response.status_code == 400 and "already linked" in response.text
    assert stripe_customers_of(stripe_url, contract["id"]) == []
    assert not (await customer_row(contract["id"]))["stripe_customer_id"]
    for org in (main, anvil, bare):
        assert len(stripe_customers_of(stripe_url, org["id"])) == 1
    bare_remote = stripe_customers_of(stripe_url, bare["id"])[0]
    assert bare_remote["name"] == "Bare" and not bare_remote.get("email")
    assert len(recorder.of("billing.customer.linked", tenant.id)) == 3


async def test_switch_and_link_are_refused_to_others(app, tenant_factory, recorder, stripe_url):
    tenant, other = await tenant_factory(provider="local"), await tenant_factory(provider="local")
    org = await add_org(app, tenant, "Rocket", "rocket-labs")
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
    # an organization owner is not a tenant admin
    async with client_for(app, tenant.host) as owner:
        assert (await login(owner, tenant.email("owner"))).status_code == 302
        token = await csrf_token(owner, "/account")
        for path, data in ((f"{PAGE}/provider", {"provider": "stripe"}),
                           (f"{PAGE}/link", {"organization": str(org["id"])}), (f"{PAGE}/link", {"all": "1"})):
            response = await owner.post(path, data={"_csrf_token": token, **data})
            assert response.status_code == 403 and "administrators of this portal" in response.text, path
    # another tenant's admin: the session is not one on this host, and their own console can't reach our orgs
    async with admin(app, other) as foreign:
        assert (await connect(foreign)).status_code == 302
        response = await post(foreign, f"{PAGE}/link", {"organization": str(org["id"])})
        assert response.status_code == 400 and "is not one of your portal" in response.text
        assert org["name"] not in (await foreign.get(PAGE)).text
        async with client_for(app, tenant.host) as borrowed:
            borrowed.cookies.set("portal_session", foreign.cookies.get("portal_session"))
            response = await borrowed.post(f"{PAGE}/provider", data={"_csrf_token": await csrf_token(foreign, PAGE),
                                                                      "provider": "stripe"})
            assert response.status_code in (302, 403) and "saved=" not in response.headers.get("location", "")
        assert (await post(foreign, f"{PAGE}/provider", {"provider": "stripe"})).status_code == 302
    assert (await tenant_settings(tenant))["billing"]["provider"] == "local"
    assert (await tenant_settings(other))["billing"]["provider"] == "stripe"
    assert stripe_customers_of(stripe_url, org["id"]) == []
    assert not (await customer_row(org["id"]))["stripe_customer_id"]
    assert recorder.of("billing.provider.changed", tenant.id) == []
    assert recorder.of("billing.customer.linked", tenant.id) == []


async def test_linked_organization_is_billed_through_stripe_once_switched(app, tenant_factory, stripe_url):
    from core.context import CurrentOrganization
    from plugins.billing.providers import LocalProvider, provider_for
    from plugins.billing.stripe_provider import StripeProvider
    from plugins.billing.tables import Subscription
    from plugins.billing.webhooks import sync_organization

    tenant = await tenant_factory(provider="local")
    org = await add_org(app, tenant, "Main", org_id=tenant.org_id)  # starter, like every unnamed demo org
    remote = stripe.StripeClient(KEY, base_addresses={"api": stripe_url})
    for plan_id, amount in (("starter", 1900), ("team", 4900)):
        with contextlib.suppress(stripe.StripeError):  # created by an earlier test of this module
            remote.v1.plans.create(params={"id": plan_id, "amount": amount, "currency": "eur", "interval": "month",
                                           "product": {"name": plan_id.title()}})
    runtime = app.state.portal

    def org_ctx() -> Any:
        return system_context(runtime, runtime.directory.get(tenant.id),
                              organization=CurrentOrganization(org["id"], org["slug"], org["name"]))

    billing = f"/o/{tenant.org_slug}/billing"
    async with admin(app, tenant) as client:
        assert (await connect(client)).status_code == 302
        assert (await post(client, f"{PAGE}/link", {"organization": str(org["id"])})).status_code == 302
        # linked but the tenant still bills on the ledger: the local provider, no Stripe card page
        assert isinstance(await provider_for(org_ctx(), org["id"]), LocalProvider)
        async with client_for(app, tenant.host) as owner:
            await login(owner, tenant.email("owner"))
            response = await owner.post(f"{billing}/payment-method", data={"_csrf_token": await csrf_token(owner,
                                                                                                            billing)})
            assert response.status_code in (302, 303) and "FAKE_BILLING_PORTAL" not in response.headers["location"]

        assert (await post(client, f"{PAGE}/provider", {"provider": "stripe"})).status_code == 302
    await runtime.directory.ensure_fresh()  # what the next request does after the console invalidated it
    assert isinstance(await provider_for(org_ctx(), org["id"]), StripeProvider)

    customer_id = (await customer_row(org["id"]))["stripe_customer_id"]
    pm = remote.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    remote.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    created = remote.v1.subscriptions.create(params={"customer": customer_id, "items": [{"plan": "starter"}]})
    await sync_organization(org_ctx(), org_ctx().organization)
    async with client_for(app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        token = await csrf_token(owner, billing)
        response = await owner.post(f"{billing}/payment-method", data={"_csrf_token": token})
        assert response.status_code == 303 and "FAKE_BILLING_PORTAL" in response.headers["location"]
        response = await owner.post(f"{billing}/plans/team", data={"_csrf_token": token})
        assert response.status_code in (302, 303), response.text
    assert remote.v1.subscriptions.retrieve(created.id).to_dict()["items"]["data"][0]["plan"]["id"] == "team"
    sub = await Subscription.select().where(Subscription.organization == org["id"]).first()
    assert sub["plan_id"] == "team" and sub["stripe_subscription_id"] == created.id


@pytest.mark.browser
async def test_switch_and_link_in_the_browser(app, tenant_factory, stripe_url):
    from core.testing import PASSWORD, artifact, headless_chromium, live_server

    tenant = await tenant_factory(provider="local")
    await add_org(app, tenant, "Main", org_id=tenant.org_id)
    await add_org(app, tenant, "Rocket", "rocket-labs")
    contract = await add_org(app, tenant, "Springfield", "springfield-power")
    anvil = await add_org(app, tenant, "Anvil", "anvil-works")
    async with live_server(app) as port, headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1440, "height": 1100})
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        base = f"http://{tenant.host}:{port}"
        await page.goto(f"{base}/login?next={PAGE}")
        await page.fill("#email", tenant.email("admin"))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"**{PAGE}")
        await page.fill("#secret_key", KEY)
        await page.fill("#webhook_secret", WHSEC)
        await page.click("text=Connect Stripe")
        await page.wait_for_url("**saved=connected")

        await page.click("[data-testid=provider-on]")
        await page.wait_for_url("**saved=provider-stripe**")
        assert await page.inner_text("[data-testid=provider-state]") == "on"
        await page.locator(".stripe-billing").screenshot(path=artifact("billing-admin-stripe-unlinked.png"))
        await page.click(f"tr[data-org='{anvil['slug']}'] >> text=Create Stripe customer")
        await page.wait_for_url("**saved=linked**")
        assert await page.get_attribute(f"tr[data-org='{anvil['slug']}']", "data-state") == "linked"
        await page.click("[data-testid=link-all]")
        await page.wait_for_url("**linked=2**")
        states = await page.eval_on_selector_all("tr[data-testid=org-link]", "rows => rows.map(r => r.dataset.state)")
        assert sorted(states) == ["contract", "linked", "linked", "linked"]
        assert await page.get_attribute(f"tr[data-org='{contract['slug']}']", "data-state") == "contract"
        await page.screenshot(path=artifact("billing-admin-stripe-billing.png"), full_page=True)
        await page.locator("#billing-provider").screenshot(path=artifact("billing-admin-stripe-provider.png"))
        await page.locator("#organizations").screenshot(path=artifact("billing-admin-stripe-organizations.png"))


async def test_link_all_goes_in_batches_and_a_refused_key_links_nothing(app, tenant_factory, stripe_url, monkeypatch):
    from plugins.billing import admin_stripe

    tenant = await tenant_factory(provider="local")
    orgs = [await add_org(app, tenant, name) for name in ("Alpha", "Beta")]
    async with admin(app, tenant) as client:
        assert (await connect(client, "rk_test_" + "w" * 24)).status_code == 302  # localstripe refuses rk_ keys
        response = await post(client, f"{PAGE}/link", {"organization": str(orgs[0]["id"])})
        assert response.status_code == 400 and "did not accept this secret key" in response.text
        response = await post(client, f"{PAGE}/link", {"all": "1"})
        assert response.status_code == 400 and "did not accept this secret key" in response.text
        assert [(await customer_row(o["id"]))["stripe_customer_id"] for o in orgs] == [None, None]

        assert (await connect(client)).status_code == 302
        monkeypatch.setattr(admin_stripe, "LINK_BATCH", 2)
        response = await post(client, f"{PAGE}/link", {"all": "1"})  # Alpha, Beta; the tenant's own org waits
        assert "linked=2&remaining=1" in response.headers["location"]
        page = (await client.get(response.headers["location"])).text
        assert "1 organization(s) are still waiting" in page and "Link all 1 not linked" in page
        response = await post(client, f"{PAGE}/link", {"all": "1"})
        assert "linked=1&remaining=0" in response.headers["location"]
    for org in orgs:
        assert len(stripe_customers_of(stripe_url, org["id"])) == 1
