"""Retention on cancel: a downgrade and, where the tenant allows it, a pause of 1 to N months on the local ledger
(no invoices while paused, the resume date shown, resume early)."""

from __future__ import annotations

from datetime import timedelta

from core.db import as_utc, utcnow
from plugins.billing.service import add_months
from plugins.billing.tables import Invoice, Subscription
from plugins.billing.tests.test_local import BILLING, post, signed_in


async def sub_of(tenant):
    return await Subscription.select().where(Subscription.organization == tenant.org_id).first()


async def test_pause_offered_then_scheduled_and_called_off(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs", pause_allowed=True, pause_max_months=2)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "billing") as client:
        form = (await client.get(org + "/cancel")).text
        assert 'data-testid="pause-offer"' in form and "Switch to Team instead" in form
        assert '<option value="2">2 months</option>' in form and 'value="3"' not in form
        too_long = await post(client, org + "/pause", {"months": "3"}, token_from=org + "/cancel")
        assert "1 to 2 months" in (await client.get(too_long.headers["location"])).text
        assert (await sub_of(tenant))["pause_resumes_at"] is None
        done = await post(client, org + "/pause", {"months": "2"}, token_from=org + "/cancel")
        assert done.status_code == 303
        sub = await sub_of(tenant)
        end = as_utc(sub["current_period_end"])
        assert as_utc(sub["pause_starts_at"]) == end and as_utc(sub["pause_resumes_at"]) == add_months(end, 2)
        page = (await client.get(org)).text
        assert "Pausing from" in page and add_months(end, 2).strftime("%d %b %Y") in page
        assert 'data-testid="subscription-status">Active' in page  # still running until the paid period ends
        again = await post(client, org + "/pause", {"months": "1"}, token_from=org)
        assert "already paused" in (await client.get(again.headers["location"])).text
        await post(client, org + "/resume", token_from=org)
        sub = await sub_of(tenant)
        assert sub["pause_starts_at"] is None and as_utc(sub["current_period_end"]) == end


async def test_paused_shows_resume_date_and_resumes_early_with_an_invoice(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs", pause_allowed=True)
    now = utcnow()
    resumes = now + timedelta(days=40)
    # as the renewal job leaves it once the pause began: the "period" runs to the resume date
    await Subscription.update({Subscription.pause_starts_at: now - timedelta(days=5),
                               Subscription.pause_resumes_at: resumes,
                               Subscription.current_period_start: now - timedelta(days=5),
                               Subscription.current_period_end: resumes}).where(
        Subscription.organization == tenant.org_id)
    count = await Invoice.count().where(Invoice.organization == tenant.org_id)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        page = (await client.get(org)).text
        assert 'data-testid="subscription-status">Paused' in page
        assert f"resumes on {resumes:%d %b %Y}" in page and "Resume now" in page
        response = await post(client, org + "/resume", token_from=org)
        assert "Welcome back" in (await client.get(response.headers["location"])).text
    sub = await sub_of(tenant)
    assert sub["pause_resumes_at"] is None
    start = as_utc(sub["current_period_start"])
    assert abs((start - now).total_seconds()) < 60 and as_utc(sub["current_period_end"]) == add_months(start, 1)
    invoices = await Invoice.select().where(Invoice.organization == tenant.org_id).order_by(
        Invoice.created_at, ascending=False)
    assert len(invoices) == count + 1 and invoices[0]["subtotal"] == 14900 and invoices[0]["status"] == "paid"


async def test_no_pause_where_the_tenant_does_not_offer_it(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        form = (await client.get(org + "/cancel")).text
        assert "pause-offer" not in form and "retention-offer" in form  # the downgrade is still offered
        response = await post(client, org + "/pause", {"months": "1"}, token_from=org + "/cancel")
        assert "not offered" in (await client.get(response.headers["location"])).text
    assert (await sub_of(tenant))["pause_resumes_at"] is None


async def test_viewer_cannot_pause(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs", pause_allowed=True)
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant, "viewer") as client:
        response = await post(client, org + "/pause", {"months": "1"}, token_from=org)
        assert response.status_code == 403
    assert (await sub_of(tenant))["pause_resumes_at"] is None


async def test_pause_without_resume_date_on_the_ledger_skips_invoices_until_resumed(billing_app, billing_tenant):
    """A pause with no resume date (as mirrored from Stripe, should the organization move to the ledger): renewals
    move on one interval at a time without invoices, the page says so, and resuming invoices a new period."""
    from plugins.billing.renewals import renew_due

    tenant = await billing_tenant("rocket-labs")
    now = utcnow()
    ended = now - timedelta(days=10)
    await Subscription.update({Subscription.pause_starts_at: ended, Subscription.pause_resumes_at: None,
                               Subscription.current_period_start: add_months(ended, -1),
                               Subscription.current_period_end: ended}).where(
        Subscription.organization == tenant.org_id)
    count = await Invoice.count().where(Invoice.organization == tenant.org_id)
    report = await renew_due(billing_app.state.portal, now, tenant.id)
    assert (report.paused, report.invoiced) == (1, 0)
    sub = await sub_of(tenant)
    assert as_utc(sub["current_period_end"]) == add_months(ended, 1) and as_utc(sub["pause_starts_at"]) == ended
    assert await Invoice.count().where(Invoice.organization == tenant.org_id) == count
    org = BILLING.format(org=tenant.org_slug)
    async with signed_in(billing_app, tenant) as client:
        page = (await client.get(org)).text
        assert 'data-testid="subscription-status">Paused' in page and "Paused until resumed" in page
        response = await post(client, org + "/resume", token_from=org)
        assert "Welcome back" in (await client.get(response.headers["location"])).text
    sub = await sub_of(tenant)
    assert sub["pause_starts_at"] is None and abs((as_utc(sub["current_period_start"]) - now).total_seconds()) < 60
    assert await Invoice.count().where(Invoice.organization == tenant.org_id) == count + 1
