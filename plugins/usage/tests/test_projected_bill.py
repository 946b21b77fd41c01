"""The projected bill comes from the billing plugin's ``portal_billing_summaries``; without one there is none."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from core.testing import client_for, login
from plugins.usage.dashboard import build_dashboard
from plugins.usage.service import NewEvent, record_events

from .conftest import PRO
from .helpers import add_organization, ctx_for

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 4, 16, tzinfo=UTC)  # 15 of 30 April days in Berlin are over (minus two hours)


async def test_plan_price_plus_overage_at_the_plans_unit_prices(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 1000, "transfer_gb": 100}
    usage_env.billing.summaries[tenant.org_id] = PRO
    await record_events(tenant.id, tenant.org_id, [NewEvent("api_calls", 600, datetime(2026, 4, 10, tzinfo=UTC), "a"),
                                                   NewEvent("transfer_gb", 10, datetime(2026, 4, 2, tzinfo=UTC), "b")],
                        BERLIN)
    ctx = ctx_for(usage_env.app, tenant)
    dashboard = await build_dashboard(ctx, ctx.organization, now=NOW)
    fraction = dashboard.period.elapsed_fraction(NOW)
    api = next(r for r in dashboard.rows if r.key == "api_calls")
    assert api.forecast_overage == 600 / fraction - 1000 > 0  # the run rate passes the limit
    expected = Decimal("49") + Decimal(str(round(600 / fraction - 1000, 6))) * Decimal("0.01")
    assert dashboard.projected_bill == expected.quantize(Decimal("0.01"))
    assert dashboard.projected_bill > 49 and dashboard.currency == "EUR"  # transfer stays within its limit

    yearly = replace(PRO, amount=Decimal("480"), interval="year", monthly_amount=Decimal("40"))
    usage_env.billing.summaries[tenant.org_id] = yearly
    dashboard = await build_dashboard(ctx, ctx.organization, now=NOW)
    assert dashboard.plan_price == 40 and dashboard.projected_bill == (expected - 9).quantize(Decimal("0.01"))


async def test_no_billing_summary_means_no_projected_bill(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 10}
    other = await add_organization(tenant.id)
    usage_env.billing.summaries[other.id] = PRO  # another organization's plan says nothing about this one
    await record_events(tenant.id, tenant.org_id, [NewEvent("api_calls", 50, datetime.now(UTC), "x")], BERLIN)
    ctx = ctx_for(usage_env.app, tenant)
    dashboard = await build_dashboard(ctx, ctx.organization)
    assert dashboard.billing is None and dashboard.projected_bill is None and dashboard.plan_price is None
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = await client.get(f"/o/{tenant.org_slug}/usage")
    assert page.status_code == 200
    assert "No projected bill" in page.text and 'data-testid="projected-bill"' not in page.text
    assert "EUR" not in page.text and "49.00" not in page.text


async def test_projected_bill_on_the_page(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 10}
    usage_env.billing.summaries[tenant.org_id] = PRO
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("billing"))
        page = await client.get(f"/o/{tenant.org_slug}/usage")
    assert page.status_code == 200
    assert 'data-testid="projected-bill">EUR 49.00<' in page.text and "Pro: EUR 49.00" in page.text
