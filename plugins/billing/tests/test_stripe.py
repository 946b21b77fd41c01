"""StripeProvider and webhooks against a real fake: localstripe (see localstripe_server.py for its one fake route).

localstripe signs webhooks in Stripe's format and posts them to a receiver here; the
test relays each delivery unchanged (body and Stripe-Signature) to the tenant's
webhook URL, because the app under test is served in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time

import httpx
import pytest
from aiohttp import web

from core.context import CurrentOrganization, system_context
from core.testing import client_for, csrf_token, free_port, login
from plugins.billing.tables import BillingCustomer, Invoice, StripeEvent, Subscription
from plugins.billing.tests.conftest import serve_localstripe

SUBSCRIBED = {"customer.subscription.created", "invoice.payment_succeeded"}
SECRET = "whsec_test_" + "a" * 24


@pytest.fixture(scope="module")
def localstripe_url():
    """localstripe on 127.0.0.1 for this module."""
    yield from serve_localstripe("localstripe_server.py")


@pytest.fixture
async def receiver(localstripe_url):
    """A webhook endpoint localstripe posts to; collects signed deliveries."""
    deliveries: list[tuple[bytes, str]] = []

    async def receive(request):
        deliveries.append((await request.read(), request.headers.get("Stripe-Signature", "")))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with httpx.AsyncClient() as client:
        await client.post(f"{localstripe_url}/_config/webhooks/portal-{port}",
                          data={"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET})
    yield deliveries
    await runner.cleanup()


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


@pytest.fixture
async def stripe_tenant(billing_app, billing_tenant, localstripe_url):
    """A tenant billing through localstripe (plans as legacy plans) and an organization with a Stripe customer."""
    import stripe

    from plugins.billing.stripe_provider import connect

    tenant = await billing_tenant(None, provider="stripe", price_mode="plan", pause_allowed=True)
    runtime = billing_app.state.portal
    record = runtime.directory.get(tenant.id)
    ctx = system_context(runtime, record, organization=CurrentOrganization(tenant.org_id, tenant.org_slug, "Org"))
    await connect(ctx, "sk_test_" + tenant.slug, ["whsec_old_rotated_out_" + "b" * 10, SECRET], localstripe_url)
    client = stripe.StripeClient("sk_test_" + tenant.slug, base_addresses={"api": localstripe_url})
    for plan_id, amount in (("starter", 1900), ("team", 4900), ("business", 14900)):
        with contextlib.suppress(stripe.StripeError):  # created by an earlier test of this module
            client.v1.plans.create(params={"id": plan_id, "amount": amount, "currency": "eur", "interval": "month",
                                           "product": {"name": plan_id.title()}})
    customer = client.v1.customers.create(params={"email": "finance@example.com", "name": "Org"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    from core.db import utcnow
    await BillingCustomer.insert(BillingCustomer(tenant=tenant.id, organization=tenant.org_id, company_name="Org",
                                                 stripe_customer_id=customer.id, updated_at=utcnow()))
    return tenant, client, customer


def _types(deliveries):
    return {json.loads(body)["type"] for body, _ in deliveries}


async def relay(app, host, deliveries, wanted: set[str] = frozenset(), timeout: float = 10.0):
    """Wait for localstripe's signed deliveries of the ``wanted`` types and hand them to the portal unchanged."""
    deadline = time.monotonic() + timeout
    while not wanted <= _types(deliveries) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)
    results = []
    async with client_for(app, host) as client:
        for body, signature in list(deliveries):
            response = await client.post("/billing/webhooks/stripe", content=body,
                                         headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
            results.append((json.loads(body)["type"], response.status_code, response.json()))
    return results


async def test_signed_webhooks_from_localstripe_mirror_subscription_and_invoice(billing_app, stripe_tenant, receiver):
    tenant, client, customer = stripe_tenant
    await asyncio.to_thread(client.v1.subscriptions.create, params={"customer": customer.id,
                                                                    "items": [{"plan": "starter"}]})
    results = await relay(billing_app, tenant.host, receiver, wanted=SUBSCRIBED)
    assert results and all(status == 200 for _, status, _ in results), results
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["plan_id"] == "starter" and sub["status"] == "active" and sub["stripe_subscription_id"]
    invoices = await Invoice.select().where(Invoice.organization == tenant.org_id)
    assert invoices and invoices[0]["currency"] == "EUR" and invoices[0]["total"] == 1900
    # the same deliveries again: acknowledged, applied once
    again = await relay(billing_app, tenant.host, receiver, wanted=set())
    assert all(body.get("duplicate") for _, _, body in again)
    assert await StripeEvent.count().where(StripeEvent.tenant == tenant.id) == len(results)
    # the page shows the mirrored plan without calling Stripe
    async with client_for(billing_app, tenant.host) as browser:
        await login(browser, tenant.email("owner"))
        page = await browser.get(f"/o/{tenant.org_slug}/billing")
        assert "Starter" in page.text and "€19.00" in page.text


async def test_bad_signature_rejected_and_rotation_secret_accepted(billing_app, stripe_tenant):
    tenant, _client, customer = stripe_tenant
    event = {"id": "evt_rot_" + tenant.slug, "type": "customer.updated", "created": int(time.time()),
             "data": {"object": {"id": customer.id, "object": "customer"}}}
    body = json.dumps(event).encode()
    async with client_for(billing_app, tenant.host) as http:
        bad = await http.post("/billing/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, "x")})
        assert bad.status_code == 400
        old = await http.post("/billing/webhooks/stripe", content=body,
                              headers={"Stripe-Signature": sign(body, timestamp=int(time.time()) - 3600)})
        assert old.status_code == 400  # outside the timestamp tolerance
        good = await http.post("/billing/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body)})
        assert good.status_code == 200 and good.json()["outcome"] == "processed"


async def test_out_of_order_concurrent_duplicates_unknown_customer_and_replay(billing_app, stripe_tenant):
    from plugins.billing.webhooks import replay

    tenant, _client, customer = stripe_tenant
    now = int(time.time())

    def sub_event(event_id, created, plan, cancel):
        return {"id": event_id, "type": "customer.subscription.updated", "created": created, "data": {"object": {
            "id": "sub_manual", "object": "subscription", "customer": customer.id, "status": "active",
            "cancel_at_period_end": cancel, "current_period_start": now - 100, "current_period_end": now + 86400,
            "items": {"data": [{"id": "si_1", "plan": {"id": plan}}]}}}}

    newer = json.dumps(sub_event("evt_new_" + tenant.slug, now, "business", True)).encode()
    older = json.dumps(sub_event("evt_old_" + tenant.slug, now - 60, "starter", False)).encode()
    async with client_for(billing_app, tenant.host) as http:
        post = lambda body: http.post("/billing/webhooks/stripe", content=body,  # noqa: E731
                                      headers={"Stripe-Signature": sign(body)})
        first, second = await asyncio.gather(post(newer), post(newer))
        assert {first.status_code, second.status_code} == {200}
        assert sorted(bool(r.json().get("duplicate")) for r in (first, second)) == [False, True]
        stale = await post(older)
        assert stale.json()["outcome"] == "stale"
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert (sub["plan_id"], sub["cancel_at_period_end"]) == ("business", True)
        unknown = json.dumps({"id": "evt_unknown_" + tenant.slug, "type": "invoice.paid", "created": now,
                              "data": {"object": {"id": "in_x", "customer": "cus_nobody"}}}).encode()
        response = await post(unknown)
        assert response.status_code == 200 and response.json()["outcome"] == "unknown_customer"
    runtime = billing_app.state.portal
    ctx = system_context(runtime, runtime.directory.get(tenant.id))
    outcomes = await replay(ctx)
    assert outcomes["evt_old_" + tenant.slug] == "stale"
    assert outcomes["evt_unknown_" + tenant.slug] == "unknown_customer"
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["plan_id"] == "business"


async def test_stripe_actions_cancel_reactivate_and_portal_session(billing_app, stripe_tenant, receiver):
    tenant, client, customer = stripe_tenant
    await asyncio.to_thread(client.v1.subscriptions.create, params={"customer": customer.id,
                                                                    "items": [{"plan": "starter"}]})
    await relay(billing_app, tenant.host, receiver, wanted=SUBSCRIBED)
    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as http:
        await login(http, tenant.email("owner"))
        token = await csrf_token(http, org)
        response = await http.post(org + "/cancel", data={"_csrf_token": token, "reason": "too_expensive"})
        assert response.status_code == 303 and "error" not in response.headers["location"]
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert sub["cancel_at_period_end"]
        remote = await asyncio.to_thread(client.v1.subscriptions.retrieve, sub["stripe_subscription_id"])
        assert remote.cancel_at_period_end is True
        await http.post(org + "/reactivate", data={"_csrf_token": token})
        remote = await asyncio.to_thread(client.v1.subscriptions.retrieve, sub["stripe_subscription_id"])
        assert remote.cancel_at_period_end is False
        portal = await http.post(org + "/payment-method", data={"_csrf_token": token})
        assert portal.status_code == 303 and "FAKE_BILLING_PORTAL" in portal.headers["location"]


async def test_stripe_proration_preview_comes_from_stripe(billing_app, stripe_tenant, receiver):
    tenant, client, customer = stripe_tenant
    await asyncio.to_thread(client.v1.subscriptions.create, params={"customer": customer.id,
                                                                    "items": [{"plan": "starter"}]})
    await relay(billing_app, tenant.host, receiver, wanted=SUBSCRIBED)
    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as http:
        await login(http, tenant.email("owner"))
        preview = await http.get(org + "/plans/team")
        assert preview.status_code == 200
        assert 'data-testid="preview-source"' in preview.text  # Stripe's numbers, not the local computation
        # localstripe's preview: the new plan's price, minus the last invoice of the old plan as unused time
        assert 'data-testid="charge">€49.00' in preview.text and 'data-testid="credit">−€19.00' in preview.text
        assert 'data-testid="due-today">€30.00' in preview.text
        downgrade = await http.get(org + "/plans/starter")
        assert downgrade.status_code == 400  # already on starter: not offered


async def test_pause_sends_pause_collection_and_resume_unsets_it(billing_app, stripe_tenant, receiver, localstripe_url):
    """localstripe has no pause_collection: the FAKE_PAUSE_COLLECTION route records what the SDK sends."""
    from core.db import as_utc
    from plugins.billing.service import add_months

    tenant, client, customer = stripe_tenant
    await asyncio.to_thread(client.v1.subscriptions.create, params={"customer": customer.id,
                                                                    "items": [{"plan": "starter"}]})
    await relay(billing_app, tenant.host, receiver, wanted=SUBSCRIBED)
    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as http:
        await login(http, tenant.email("owner"))
        assert 'data-testid="pause-offer"' in (await http.get(org + "/cancel")).text
        token = await csrf_token(http, org)
        response = await http.post(org + "/pause", data={"_csrf_token": token, "months": "2"})
        assert "pauses on" in (await http.get(response.headers["location"])).text
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        end = as_utc(sub["current_period_end"])
        resumes = add_months(end, 2)
        assert as_utc(sub["pause_starts_at"]) == end and as_utc(sub["pause_resumes_at"]) == resumes
        sent = httpx.get(f"{localstripe_url}/FAKE_PAUSE_COLLECTION/requests", auth=("sk_test_x", "")).json()
        mine = [r for r in sent if r["subscription"] == sub["stripe_subscription_id"]]
        assert mine[-1]["form"] == {"pause_collection[behavior]": "void",
                                    "pause_collection[resumes_at]": str(int(resumes.timestamp()))}
        await http.post(org + "/resume", data={"_csrf_token": token})
        sent = httpx.get(f"{localstripe_url}/FAKE_PAUSE_COLLECTION/requests", auth=("sk_test_x", "")).json()
        assert [r for r in sent if r["subscription"] == sub["stripe_subscription_id"]][-1]["form"] == {
            "pause_collection": ""}
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert sub["pause_starts_at"] is None and sub["pause_resumes_at"] is None


async def test_customer_updated_from_localstripe_syncs_details_newest_wins(billing_app, stripe_tenant, receiver):
    tenant, client, customer = stripe_tenant
    await asyncio.to_thread(client.v1.customers.update, customer.id, params={
        "name": "Org Finance GmbH", "email": "ap@org.example",
        "address": {"line1": "Weg 2", "postal_code": "10115", "city": "Berlin", "country": "DE"},
        "metadata": {"tax_id": "DE136695976", "po_number": "PO-77"}})
    results = await relay(billing_app, tenant.host, receiver, wanted={"customer.updated"})
    assert ("customer.updated", 200) in [(kind, status) for kind, status, _ in results]
    row = await BillingCustomer.select().where(BillingCustomer.organization == tenant.org_id).first()
    assert (row["company_name"], row["billing_email"], row["address_line1"], row["city"], row["country"],
            row["tax_id"], row["po_number"]) == ("Org Finance GmbH", "ap@org.example", "Weg 2", "Berlin", "DE",
                                                 "DE136695976", "PO-77")
    older = json.dumps({"id": "evt_cust_old_" + tenant.slug, "type": "customer.updated",
                        "created": int(time.time()) - 3600,
                        "data": {"object": {"id": customer.id, "object": "customer", "name": "Old Name"}}}).encode()
    async with client_for(billing_app, tenant.host) as http:
        response = await http.post("/billing/webhooks/stripe", content=older, headers={"Stripe-Signature": sign(older)})
        assert response.json()["outcome"] == "stale"
    row = await BillingCustomer.select().where(BillingCustomer.organization == tenant.org_id).first()
    assert row["company_name"] == "Org Finance GmbH"


async def test_payment_method_attached_and_detached_update_the_shown_card(billing_app, stripe_tenant):
    tenant, _client, customer = stripe_tenant
    now = int(time.time())

    def event(event_id, kind, created, pm_id, last4, customer_id, previous=None):
        data = {"object": {"id": pm_id, "object": "payment_method", "customer": customer_id,
                           "card": {"brand": "mastercard", "last4": last4, "exp_month": 4, "exp_year": 2031}}}
        if previous:
            data["previous_attributes"] = previous
        return json.dumps({"id": f"{event_id}_{tenant.slug}", "type": kind, "created": created, "data": data}).encode()

    async with client_for(billing_app, tenant.host) as http:
        async def send(body):
            response = await http.post("/billing/webhooks/stripe", content=body,
                                       headers={"Stripe-Signature": sign(body)})
            return response.json()["outcome"]

        assert await send(event("evt_pm1", "payment_method.attached", now, "pm_new", "4444", customer.id)) == \
            "processed"
        assert await send(event("evt_pm0", "payment_method.attached", now - 50, "pm_old", "1111", customer.id)) == \
            "stale"
        row = await BillingCustomer.select().where(BillingCustomer.organization == tenant.org_id).first()
        assert (row["pm_id"], row["pm_brand"], row["pm_last4"], row["pm_exp_year"]) == (
            "pm_new", "mastercard", "4444", 2031)
        # another card detached: the shown one stays
        assert await send(event("evt_pm2", "payment_method.detached", now + 1, "pm_other", "9999", None,
                                {"customer": customer.id})) == "ignored"
        # the shown card detached (customer is null on a detached card; Stripe names it in previous_attributes)
        assert await send(event("evt_pm3", "payment_method.detached", now + 2, "pm_new", "4444", None,
                                {"customer": customer.id})) == "processed"
        row = await BillingCustomer.select().where(BillingCustomer.organization == tenant.org_id).first()
        assert (row["pm_id"], row["pm_last4"]) == ("", "")


async def test_pause_without_resume_date_from_webhooks_shows_paused_until_resumed(billing_app, stripe_tenant):
    """A pause set in Stripe's dashboard "until resumed" (``pause_collection`` with no ``resumes_at``): mirrored
    with no resume date, still paused after a renewal, active again once Stripe clears it."""
    from core.db import as_utc

    tenant, _client, customer = stripe_tenant
    now = int(time.time())
    day = 86400

    def event(n, start, end, pause):
        return json.dumps({"id": f"evt_open_pause_{n}_{tenant.slug}", "type": "customer.subscription.updated",
                           "created": now - 100 + n, "data": {"object": {
                               "id": "sub_open_pause", "object": "subscription", "customer": customer.id,
                               "status": "active", "cancel_at_period_end": False, "pause_collection": pause,
                               "current_period_start": start, "current_period_end": end,
                               "items": {"data": [{"id": "si_1", "plan": {"id": "team"}}]}}}}).encode()

    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as http:
        await login(http, tenant.email("owner"))

        async def deliver(body):
            response = await http.post("/billing/webhooks/stripe", content=body,
                                       headers={"Stripe-Signature": sign(body)})
            assert response.json()["outcome"] == "processed"
            return await Subscription.select().where(Subscription.organization == tenant.org_id).first()

        # paused from the dashboard during the period that ended ten days ago
        sub = await deliver(event(1, now - 40 * day, now - 10 * day, {"behavior": "void", "resumes_at": None}))
        assert as_utc(sub["pause_starts_at"]).timestamp() == now - 10 * day and sub["pause_resumes_at"] is None
        # Stripe renews the subscription while collection stays paused: the pause keeps its start
        sub = await deliver(event(2, now - 10 * day, now + 20 * day, {"behavior": "void", "resumes_at": None}))
        assert as_utc(sub["pause_starts_at"]).timestamp() == now - 10 * day and sub["pause_resumes_at"] is None
        page = (await http.get(org)).text
        assert 'data-testid="subscription-status">Paused' in page
        assert "Paused until resumed" in page and "Resume now" in page and "Next invoice" not in page
        assert 'data-testid="pause-offer"' not in (await http.get(org + "/cancel")).text  # paused already
        # Stripe clears pause_collection: active again, billed from the period end
        sub = await deliver(event(3, now - 10 * day, now + 20 * day, None))
        assert sub["pause_starts_at"] is None and sub["pause_resumes_at"] is None
        page = (await http.get(org)).text
        assert 'data-testid="subscription-status">Active' in page
        assert "pause-state" not in page and "Next invoice" in page


async def test_sync_mirrors_a_pause_without_resume_date_and_the_page_calls_it_off(billing_app, stripe_tenant,
                                                                                  receiver, localstripe_url):
    """Set on localstripe through FAKE_PAUSE_COLLECTION with no ``resumes_at``, backfilled by ``portal billing
    sync``; "Call off the pause" unsets it on Stripe."""
    from core.db import as_utc
    from plugins.billing.webhooks import sync_organization

    tenant, client, customer = stripe_tenant
    created = await asyncio.to_thread(client.v1.subscriptions.create, params={"customer": customer.id,
                                                                              "items": [{"plan": "starter"}]})
    await relay(billing_app, tenant.host, receiver, wanted=SUBSCRIBED)
    await asyncio.to_thread(client.v1.subscriptions.update, created.id,
                            params={"pause_collection": {"behavior": "void"}})
    runtime = billing_app.state.portal
    ctx = system_context(runtime, runtime.directory.get(tenant.id),
                         organization=CurrentOrganization(tenant.org_id, tenant.org_slug, "Org"))
    assert (await sync_organization(ctx, ctx.organization))["subscriptions"] == 1
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    end = as_utc(sub["current_period_end"])
    assert as_utc(sub["pause_starts_at"]) == end and sub["pause_resumes_at"] is None
    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as http:
        await login(http, tenant.email("owner"))
        page = (await http.get(org)).text
        assert 'data-testid="subscription-status">Active' in page  # the paid period runs to its end
        assert f"Pausing from {end:%d %b %Y} until resumed" in page and "Call off the pause" in page
        token = await csrf_token(http, org)
        response = await http.post(org + "/resume", data={"_csrf_token": token})
        assert "pause is over" in (await http.get(response.headers["location"])).text
    sent = httpx.get(f"{localstripe_url}/FAKE_PAUSE_COLLECTION/requests", auth=("sk_test_x", "")).json()
    assert [r["form"] for r in sent if r["subscription"] == created.id] == [
        {"pause_collection[behavior]": "void"}, {"pause_collection": ""}]
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["pause_starts_at"] is None and sub["pause_resumes_at"] is None
