"""Renewals of the local ledger with fixed clocks: next period invoiced once, downgrades and cancellations at the
period end, pauses without invoices, Stripe-billed subscriptions left to Stripe."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.db import as_utc
from plugins.billing.renewals import renew_due
from plugins.billing.service import add_months
from plugins.billing.tables import Invoice, Subscription


async def sub_of(tenant):
    return await Subscription.select().where(Subscription.organization == tenant.org_id).first()


async def invoices_of(tenant):
    return await Invoice.select().where(Invoice.organization == tenant.org_id).order_by(Invoice.issued_at)


async def test_rollover_invoices_the_next_period_exactly_once(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")  # Business, card valid
    runtime = billing_app.state.portal
    before = await sub_of(tenant)
    end = as_utc(before["current_period_end"])
    count = len(await invoices_of(tenant))
    early = await renew_due(runtime, end - timedelta(minutes=1), tenant.id)
    assert early.invoiced == 0 and len(await invoices_of(tenant)) == count
    now = end + timedelta(minutes=5)
    reports = await asyncio.gather(renew_due(runtime, now, tenant.id), renew_due(runtime, now, tenant.id))
    assert sum(r.invoiced for r in reports) == 1
    again = await renew_due(runtime, now, tenant.id)
    assert again.invoiced == 0
    invoices = await invoices_of(tenant)
    assert len(invoices) == count + 1
    latest = invoices[-1]
    assert latest["status"] == "paid" and latest["total"] == 17731 and latest["payment_note"] == "Visa •••• 4242"
    assert as_utc(latest["period_start"]) == end and as_utc(latest["period_end"]) == add_months(end, 1)
    after = await sub_of(tenant)
    assert as_utc(after["current_period_start"]) == end and as_utc(after["current_period_end"]) == add_months(end, 1)


async def test_catch_up_several_periods_and_other_tenants_untouched(billing_app, billing_tenant):
    tenant = await billing_tenant("springfield-power")  # contract, bank transfer: invoices stay open
    other = await billing_tenant("rocket-labs")
    runtime = billing_app.state.portal
    end = as_utc((await sub_of(tenant))["current_period_end"])
    other_before = await sub_of(other)
    count = len(await invoices_of(tenant))
    report = await renew_due(runtime, add_months(end, 2) + timedelta(hours=1), tenant.id)
    assert report.invoiced == 3
    invoices = await invoices_of(tenant)
    assert len(invoices) == count + 3 and {i["status"] for i in invoices[-3:]} == {"open"}
    assert as_utc((await sub_of(tenant))["current_period_end"]) == add_months(end, 3)
    assert await sub_of(other) == other_before


async def test_scheduled_downgrade_applies_at_period_end(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    await Subscription.update({Subscription.pending_plan_id: "starter"}).where(
        Subscription.organization == tenant.org_id)
    end = as_utc((await sub_of(tenant))["current_period_end"])
    report = await renew_due(billing_app.state.portal, end + timedelta(seconds=1), tenant.id)
    assert (report.invoiced, report.downgraded) == (1, 1)
    sub = await sub_of(tenant)
    assert (sub["plan_id"], sub["pending_plan_id"]) == ("starter", None)
    assert (await invoices_of(tenant))[-1]["subtotal"] == 1900


async def test_cancelled_at_period_end_ends_without_invoice(billing_app, billing_tenant):
    tenant = await billing_tenant("cypress-creek")  # cancelling
    end = as_utc((await sub_of(tenant))["current_period_end"])
    count = len(await invoices_of(tenant))
    report = await renew_due(billing_app.state.portal, end + timedelta(days=40), tenant.id)
    assert (report.ended, report.invoiced) == (1, 0)
    sub = await sub_of(tenant)
    assert sub["status"] == "canceled" and as_utc(sub["canceled_at"]) == end
    assert len(await invoices_of(tenant)) == count
    assert (await renew_due(billing_app.state.portal, end + timedelta(days=80), tenant.id)).ended == 0


async def test_pause_skips_invoices_until_it_resumes(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    end = as_utc((await sub_of(tenant))["current_period_end"])
    resumes = add_months(end, 2)
    await Subscription.update({Subscription.pause_starts_at: end, Subscription.pause_resumes_at: resumes}).where(
        Subscription.organization == tenant.org_id)
    count = len(await invoices_of(tenant))
    runtime = billing_app.state.portal
    report = await renew_due(runtime, end + timedelta(days=45), tenant.id)
    assert (report.paused, report.invoiced) == (1, 0) and len(await invoices_of(tenant)) == count
    assert as_utc((await sub_of(tenant))["current_period_end"]) == resumes
    report = await renew_due(runtime, resumes + timedelta(hours=1), tenant.id)
    assert report.invoiced == 1
    sub = await sub_of(tenant)
    assert sub["pause_starts_at"] is None and sub["pause_resumes_at"] is None
    latest = (await invoices_of(tenant))[-1]
    assert as_utc(latest["period_start"]) == resumes


async def test_stripe_subscriptions_are_left_to_stripe(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs")
    await Subscription.update({Subscription.stripe_subscription_id: "sub_123"}).where(
        Subscription.organization == tenant.org_id)
    end = as_utc((await sub_of(tenant))["current_period_end"])
    report = await renew_due(billing_app.state.portal, end + timedelta(days=1), tenant.id)
    assert report.invoiced == 0


async def test_the_app_renews_in_the_background(portal_app_factory, billing_tenant):
    """Where the outbox worker runs, ``portal_startup`` starts the renewal loop; shutdown stops it."""
    from core.db import utcnow

    tenant = await billing_tenant("rocket-labs")
    now = utcnow()
    await Subscription.update({Subscription.current_period_start: add_months(now, -1) - timedelta(minutes=1),
                               Subscription.current_period_end: now - timedelta(minutes=1)}).where(
        Subscription.organization == tenant.org_id)
    count = len(await invoices_of(tenant))
    app = await portal_app_factory(outbox_worker=True, extra={"billing_pdf_workers": "0",
                                                              "billing_renew_interval": "0.2"})
    assert "billing_renewal_task" in app.state.portal.state
    for _ in range(100):
        if len(await invoices_of(tenant)) > count:
            break
        await asyncio.sleep(0.1)
    assert len(await invoices_of(tenant)) == count + 1
    assert as_utc((await sub_of(tenant))["current_period_end"]) > now
