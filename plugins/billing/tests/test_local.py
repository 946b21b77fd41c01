"""The local ledger through the pages a person uses: summary, invoices, PDFs, plan changes, cancellation."""

from __future__ import annotations

import re
import subprocess
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import pytest

from core.context import CurrentOrganization, system_context
from core.db import utcnow
from core.tables import DevMail, Notification
from core.testing import client_for, csrf_token, deliver_outbox, login
from plugins.billing.plans import Plan, billing_config
from plugins.billing.service import preview_change
from plugins.billing.tables import Invoice, Subscription

BILLING = "/o/{org}/billing"


@asynccontextmanager
async def signed_in(app, tenant, role="owner"):
    async with client_for(app, tenant.host) as client:
        response = await login(client, tenant.email(role))
        assert response.status_code == 302
        yield client


async def post(client, path, data=None, token_from=None):
    token = await csrf_token(client, token_from or path.rsplit("/", 1)[0] or path)
    return await client.post(path, data={"_csrf_token": token, **(data or {})})


async def test_summary_and_invoices_show_formatted_amounts_and_badges(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    async with signed_in(billing_app, tenant) as client:
        page = await client.get(BILLING.format(org=tenant.org_slug))
        assert page.status_code == 200
        text = page.text
        assert "Business" in text and "€149.00 / month" in text
        assert "€177.31" in text  # 149.00 + 19 % VAT, Babel formatted
        assert 'data-testid="subscription-status">Active' in text
        assert "badge-success" in text and ">Void<" in text and ">Open<" in text
        assert "Visa •••• 4242" in text
        assert "past-due-banner" not in text
        assert "Page 1 of 2" in text  # 13 invoices, 10 per page
        numbers = re.findall(r"<td>([A-Z0-9]+-[A-Z0-9]+-\d{4})</td>", text)
        assert len(numbers) == 10 and numbers == sorted(numbers, reverse=True)
        second = await client.get(BILLING.format(org=tenant.org_slug) + "?page=2")
        assert len(re.findall(r"<td>([A-Z0-9]+-[A-Z0-9]+-\d{4})</td>", second.text)) == 3


async def test_past_due_banner_and_failed_retry_notifies_payers(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works")
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        page = await client.get(org)
        assert 'data-testid="past-due-banner"' in page.text
        assert "Past due" in page.text and "expired 03/2024" in page.text
        assert "Retry payment" in page.text and "Update payment method" in page.text
        response = await post(client, org + "/retry", token_from=org)
        assert response.status_code == 303
        assert "expired" in (await client.get(response.headers["location"])).text
    await deliver_outbox(billing_app)
    mails = await DevMail.select(DevMail.recipient, DevMail.subject).where(DevMail.tenant == tenant.id)
    assert {m["recipient"] for m in mails} == {tenant.email("owner"), tenant.email("billing")}
    assert all("€22.61" in m["subject"] for m in mails)
    bells = await Notification.count().where(Notification.tenant == tenant.id)
    assert bells == 2
    async with signed_in(billing_app, tenant, "viewer") as client:
        page = await client.get(org)
        assert "past-due-banner" in page.text and "Retry payment" not in page.text


async def test_retry_with_valid_card_pays_and_clears_past_due(billing_app, billing_tenant):
    from plugins.billing.tables import BillingCustomer

    tenant = await billing_tenant("anvil-works")
    await BillingCustomer.update({BillingCustomer.pm_exp_year: utcnow().year + 2}).where(
        BillingCustomer.organization == tenant.org_id)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "billing") as client:
        response = await post(client, org + "/retry", token_from=org)
        assert "Paid" in (await client.get(response.headers["location"])).text
        page = await client.get(org)
        assert "past-due-banner" not in page.text
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["status"] == "active"


async def test_invoice_pdf_contains_tenant_number_and_totals(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works")
    org = BILLING.format(org=tenant.org_slug)
    invoice = await Invoice.select().where(Invoice.organization == tenant.org_id, Invoice.status == "open").first()
    async with signed_in(billing_app, tenant, "viewer") as client:
        response = await client.get(f"{org}/invoices/{invoice['id']}/pdf")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=response.content, capture_output=True,
                              check=True).stdout.decode()
        assert "Test Cloud" in text and "Test Cloud GmbH" in text and "DE136695976" in text
        assert invoice["number"] in text
        assert "€19.00" in text and "€3.61" in text and "€22.61" in text and "OPEN" in text
        again = await client.get(f"{org}/invoices/{invoice['id']}/pdf")
        assert again.content == response.content  # served from the cache
        assert 'desc="render"' in response.headers["server-timing"]
        assert 'desc="cache"' in again.headers["server-timing"]
        etag = again.headers["etag"]
        assert etag == response.headers["etag"] and "private" in again.headers["cache-control"]
        unchanged = await client.get(f"{org}/invoices/{invoice['id']}/pdf", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        await Invoice.update({Invoice.status: "paid", Invoice.amount_paid: invoice["total"],
                              Invoice.paid_at: utcnow()}).where(Invoice.id == invoice["id"])
        paid = await client.get(f"{org}/invoices/{invoice['id']}/pdf", headers={"If-None-Match": etag})
        assert paid.status_code == 200 and paid.headers["etag"] != etag  # a payment is a new version
        text = subprocess.run(["pdftotext", "-", "-"], input=paid.content, capture_output=True).stdout.decode()
        assert "PAID" in text and "OPEN" not in text


async def test_invoice_preview_is_for_tenant_admins_only(billing_app, billing_tenant):
    from core.tables import User

    tenant = await billing_tenant("rocket-labs")
    async with client_for(billing_app, tenant.host) as anonymous:
        assert (await anonymous.get("/admin/billing/invoice-preview")).status_code in (302, 401)
    async with signed_in(billing_app, tenant, "owner") as client:
        assert (await client.get("/admin/billing/invoice-preview")).status_code == 403
    await User.update({User.is_tenant_admin: True}).where(User.email == tenant.email("owner"))
    async with signed_in(billing_app, tenant, "owner") as client:
        response = await client.get("/admin/billing/invoice-preview")
        assert response.status_code == 200
        text = subprocess.run(["pdftotext", "-", "-"], input=response.content, capture_output=True).stdout.decode()
        assert "SAMPLE-0001" in text and "Example Customer Ltd" in text


def test_proration_numbers():
    config = billing_config(type("T", (), {"settings": {"billing": {"tax_rate": 19, "plans": []}}})())
    now = utcnow()
    sub = {"current_period_start": now - timedelta(days=10), "current_period_end": now + timedelta(days=20)}
    starter = Plan("starter", "Starter", 3000, "EUR")
    team = Plan("team", "Team", 6000, "EUR")
    up = preview_change(config, sub, starter, team, now)
    assert (up.effective_now, up.credit, up.charge, up.subtotal) == (True, 2000, 4000, 2000)
    assert up.tax == 380 and up.due_today == 2380 and up.new_recurring == 6000
    assert up.next_date == sub["current_period_end"]
    down = preview_change(config, sub, team, starter, now)
    assert (down.effective_now, down.due_today, down.new_recurring) == (False, 0, 3000)
    assert config.tax_rate == Decimal(19)


async def test_upgrade_preview_then_confirm_and_downgrade_at_period_end(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works")  # on Starter
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        plans = await client.get(org + "/plans")
        assert "Current plan" in plans.text and "Upgrade" in plans.text
        preview = await client.get(org + "/plans/team")
        assert preview.status_code == 200
        assert "Charged today" in preview.text and "Credit for unused time on Starter" in preview.text
        assert "€49.00 / month" in preview.text
        response = await post(client, org + "/plans/team", token_from=org + "/plans/team")
        assert response.status_code == 303 and "now on Team" in (await client.get(response.headers["location"])).text
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert sub["plan_id"] == "team"
        proration = await Invoice.select().where(Invoice.organization == tenant.org_id).order_by(
            Invoice.created_at, ascending=False).first()
        assert "Remaining time on Team" in str(proration["lines"])
        assert 0 < proration["subtotal"] < 4900 - 1900
        preview = await client.get(org + "/plans/starter")
        assert "the change takes effect then" in preview.text
        await post(client, org + "/plans/starter", token_from=org + "/plans/starter")
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert (sub["plan_id"], sub["pending_plan_id"]) == ("team", "starter")
        assert "Moving to Starter" in (await client.get(org)).text


async def test_tenant_can_restrict_plan_changes(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works", allowed_plan_changes={"starter": ["team"]})
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        page = (await client.get(org + "/plans")).text
        business = page[page.index('data-plan="business"'):]
        assert "Not available for your organization" in business and "disabled" in business
        assert f'href="/o/{tenant.org_slug}/billing/plans/team"' in page
        response = await post(client, org + "/plans/business", token_from=org + "/plans")
        assert response.status_code == 400 and "Not available for your organization" in response.text
        assert (await client.get(org + "/plans/business")).status_code == 400
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["plan_id"] == "starter"


async def test_cancel_with_reason_then_reactivate(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "billing") as client:
        form = await client.get(org + "/cancel")
        assert "retention-offer" in form.text and "Switch to Team instead" in form.text
        bad = await post(client, org + "/cancel", {"reason": "other", "feedback": ""}, token_from=org + "/cancel")
        assert bad.status_code == 400 and "what made you cancel" in bad.text
        done = await post(client, org + "/cancel", {"reason": "too_expensive"}, token_from=org + "/cancel")
        assert done.status_code == 303
        page = await client.get(org)
        assert "Cancelling" in page.text and "Reactivate subscription" in page.text
        sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
        assert sub["cancel_at_period_end"] and sub["cancel_reason"] == "too_expensive"
        await post(client, org + "/reactivate", token_from=org)
        page = await client.get(org)
        assert 'data-testid="subscription-status">Active' in page.text


@pytest.mark.parametrize(("country", "tax_id", "message"), [
    ("DE", "DE123456789", "check digits do not match"),
    ("FR", "FR123", "wrong number of characters"),
    ("DE", "FR40303265045", "starts with DE"),
    ("", "DE136695976", "Choose the country first"),
])
async def test_vat_validation_errors(billing_app, billing_tenant, country, tax_id, message):
    tenant = await billing_tenant(None)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        response = await post(client, org + "/details", {"company_name": "ACME", "billing_email": "f@acme.example",
                                                         "country": country, "tax_id": tax_id})
        assert response.status_code == 400 and message in response.text
        assert 'aria-invalid="true"' in response.text


async def test_billing_details_saved_normalised_and_on_invoice(billing_app, billing_tenant):
    from plugins.billing.tables import BillingCustomer

    tenant = await billing_tenant("rocket-labs")
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        response = await post(client, org + "/details", {
            "company_name": "Rocket Labs SE", "billing_email": "ap@rocket.example", "address_line1": "Weg 1",
            "postal_code": "10115", "city": "Berlin", "country": "de", "tax_id": "de 136 695 976",
            "po_number": "PO-9"})
        assert response.status_code == 303
        row = await BillingCustomer.select().where(BillingCustomer.organization == tenant.org_id).first()
        assert (row["tax_id"], row["country"], row["company_name"]) == ("DE136695976", "DE", "Rocket Labs SE")
        invoice = await Invoice.select(Invoice.id).where(Invoice.organization == tenant.org_id).first()
        pdf = await client.get(f"{org}/invoices/{invoice['id']}/pdf")
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True).stdout.decode()
        assert "Rocket Labs SE" in text and "PO-9" in text and "Germany" in text


ACTIONS = {
    "view": ("get", ""), "pdf": ("get", "/invoices/{invoice}/pdf"), "plans": ("get", "/plans"),
    "preview": ("get", "/plans/team"), "cancel_form": ("get", "/cancel"), "details": ("get", "/details"),
    "change": ("post", "/plans/team"), "cancel": ("post", "/cancel"), "save_details": ("post", "/details"),
}
EXPECTED = {
    "owner": set(ACTIONS), "billing": set(ACTIONS),
    "admin": {"view", "pdf", "plans", "details"}, "viewer": {"view", "pdf", "plans", "details"}, "member": set(),
}


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_role_action_matrix(billing_app, billing_tenant, role):
    tenant = await billing_tenant("rocket-labs")
    org = BILLING.format(org=tenant.org_slug)
    invoice = await Invoice.select(Invoice.id).where(Invoice.organization == tenant.org_id).first()
    async with signed_in(billing_app, tenant, role) as client:
        token = await csrf_token(client, "/account")
        for action, (method, path) in ACTIONS.items():
            url = org + path.format(invoice=invoice["id"])
            if method == "get":
                response = await client.get(url)
            else:
                response = await client.post(url, data={"_csrf_token": token, "reason": "other", "feedback": "x",
                                                        "company_name": "X", "billing_email": "x@x.example"})
            allowed = response.status_code in (200, 303)
            assert allowed == (action in EXPECTED[role]), (role, action, response.status_code)
            if not allowed:
                assert response.status_code == 403


@pytest.mark.parametrize("granted", [True, False])
async def test_admin_manages_when_tenant_grants_it(billing_app, billing_tenant, granted):
    """The tenant's choice is the core role override ``[settings.roles.admin] grant = ["billing.manage"]``."""
    roles = {"admin": {"grant": ["billing.manage"]}} if granted else {}
    tenant = await billing_tenant("rocket-labs", roles=roles)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "admin") as client:
        assert (await client.get(org + "/plans/team")).status_code == (200 if granted else 403)
        assert ("Cancel subscription" in (await client.get(org)).text) is granted
        response = await post(client, org + "/plans/team", token_from=org)
        assert response.status_code == (303 if granted else 403)
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert (sub["plan_id"], sub["pending_plan_id"]) == ("business", "team" if granted else None)  # a downgrade


async def test_cross_org_and_cross_tenant_isolation(billing_app, billing_tenant):
    first = await billing_tenant("rocket-labs")
    second = await billing_tenant("anvil-works")
    other_invoice = await Invoice.select(Invoice.id).where(Invoice.organization == second.org_id).first()
    async with signed_in(billing_app, first) as client:
        assert (await client.get(f"/o/{first.org_slug}/billing/invoices/{other_invoice['id']}/pdf")).status_code == 404
        assert (await client.get(f"/o/{second.org_slug}/billing")).status_code == 404
        page = await client.get(f"/o/{first.org_slug}/billing")
        assert "past-due-banner" not in page.text
    async with client_for(billing_app, first.host) as client:
        await login(client, second.email("owner"))
        assert (await client.get(f"/o/{second.org_slug}/billing")).status_code in (302, 401, 404)


async def test_disabled_plugin_routes_are_404(billing_app, billing_tenant):
    tenant = await billing_tenant(None, plugins=["team"])
    async with signed_in(billing_app, tenant) as client:
        assert (await client.get(f"/o/{tenant.org_slug}/billing")).status_code == 404


async def test_plan_limits_hook_and_seed_idempotent(billing_app, billing_tenant):
    from core.tables import Organization
    from plugins.billing.seed import seed_organization

    tenant = await billing_tenant("anvil-works")
    runtime = billing_app.state.portal
    record = runtime.directory.get(tenant.id)
    org = await Organization.select().where(Organization.id == tenant.org_id).first()
    ctx = system_context(runtime, record, organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
    limits = await runtime.plugins.first("portal_plan_limits", tenant=record, ctx=ctx, org=ctx.organization)
    assert limits == {"seats": 5, "api_calls": 10000}
    before = await Invoice.count().where(Invoice.organization == tenant.org_id)
    assert await seed_organization(ctx, org) is False
    assert await Invoice.count().where(Invoice.organization == tenant.org_id) == before == 12
    statuses = {r["status"] for r in await Invoice.select(Invoice.status).where(Invoice.organization == tenant.org_id)}
    assert statuses == {"paid", "open", "uncollectible"}
    cards = await runtime.plugins.call("portal_dashboard_cards", tenant=record, ctx=ctx)
    assert any(card.value == "Starter" and "past due" in card.description for _, result in cards for card in result)


async def test_retired_plan_is_not_offered_but_keeps_its_subscribers(billing_app, billing_tenant):
    from plugins.billing.tests.conftest import PLANS

    plans = [dict(p, retired=True) if p["id"] == "business" else p for p in PLANS]
    tenant = await billing_tenant("anvil-works", plans=plans)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        assert 'data-plan="business"' not in (await client.get(org + "/plans")).text
        response = await post(client, org + "/plans/business", token_from=org + "/plans")
        assert response.status_code == 400 and "not available" in response.text
        assert (await client.get(org)).status_code == 200  # the current (starter) subscription still shows
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["plan_id"] == "starter"
