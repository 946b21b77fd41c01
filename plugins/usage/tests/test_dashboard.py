"""The dashboard: states per metric, plugin metrics beside ingested ones, forecast and projected bill."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.testing import client_for, login
from plugins.usage.dashboard import build_dashboard
from plugins.usage.seed import seed_usage
from plugins.usage.service import NewEvent, record_events
from plugins.usage.tables import UsageEvent

from .conftest import PRO
from .helpers import ctx_for

BERLIN = ZoneInfo("Europe/Berlin")


async def put(tenant, metric, quantity, key, at=None):
    at = at or datetime.now(UTC) - timedelta(minutes=2)
    await record_events(tenant.id, tenant.org_id, [NewEvent(metric, quantity, at, key)], BERLIN)


async def test_build_dashboard_states_forecast_and_bill(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 100, "transfer_gb": -1, "seats": 4}
    usage_env.billing.summaries[tenant.org_id] = PRO
    usage_env.team.seats[tenant.org_id] = 5
    now = datetime(2026, 3, 16, 12, tzinfo=UTC)  # 15.5 of 31 Berlin days (745 - 1 DST hour) are over
    await record_events(tenant.id, tenant.org_id, [
        NewEvent("api_calls", 60, datetime(2026, 3, 10, tzinfo=UTC), "a"),
        NewEvent("api_calls", 25, datetime(2026, 3, 15, tzinfo=UTC), "b"),
        NewEvent("api_calls", 999, datetime(2026, 2, 28, 22, 59, tzinfo=UTC), "february"),  # 23:59 Berlin, Feb
        NewEvent("transfer_gb", 12.5, datetime(2026, 3, 1, tzinfo=UTC), "t"),
    ], BERLIN)
    dashboard = await build_dashboard(ctx_for(usage_env.app, tenant), ctx_for(usage_env.app, tenant).organization,
                                      now=now)
    rows = {r.key: r for r in dashboard.rows}
    assert list(rows) == ["api_calls", "transfer_gb", "seats"]
    api = rows["api_calls"]
    assert (api.used, api.limit, api.state, round(api.percent)) == (85, 100, "warning", 85)
    fraction = dashboard.period.elapsed_fraction(now)
    assert api.forecast == pytest.approx(85 / fraction) and api.forecast > 100
    assert rows["transfer_gb"].state == "unlimited" and rows["transfer_gb"].forecast_overage == 0
    seats = rows["seats"]
    assert (seats.used, seats.limit, seats.state, seats.overage, seats.source) == (5, 4, "over", 1, "usage-test-seats")
    assert seats.forecast == 5  # a level, not a run rate
    expected_bill = 49 + (85 / fraction - 100) * 0.01 + 1 * 10.0
    assert float(dashboard.projected_bill) == pytest.approx(expected_bill, abs=0.006)
    assert dashboard.currency == "EUR" and dashboard.plan_price == 49
    chart = dashboard.charts["api_calls"]
    assert chart.monthly_labels[-2:] == ["Feb 2026", "Mar 2026"] and chart.monthly_values[-2:] == [999, 85]
    assert len(chart.daily_values) == 30 and chart.daily_labels[-1] == "2026-03-16" and sum(chart.daily_values) == 1084
    assert "seats" not in dashboard.charts


async def test_dashboard_page_shows_limits_states_and_upgrade_link(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 100, "transfer_gb": -1, "seats": 10}
    usage_env.billing.summaries[tenant.org_id] = PRO
    usage_env.team.seats[tenant.org_id] = 3
    await put(tenant, "api_calls", 120, "over")
    await put(tenant, "transfer_gb", 7, "gb")
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        page = await client.get(f"/o/{tenant.org_slug}/usage")
    assert page.status_code == 200, page.text
    html = page.text
    row = re.search(r'<tr class="usage-row state-over" data-metric="api_calls".*?</tr>', html, re.S).group(0)
    assert "120" in row and "Overage" in row and "20" in row and f'href="/o/{tenant.org_slug}/billing"' in row
    assert re.search(r'data-metric="transfer_gb" data-state="unlimited".*?unlimited', html, re.S)
    assert re.search(r'data-metric="seats" data-state="ok".*?30%', html, re.S)
    assert "Projected bill" in html and "Estimate" in html and "EUR" in html
    assert "/static/plugins/usage/vendor/chart.umd.min.js" in html and 'id="usage-chart-data"' in html
    assert f'href="/o/{tenant.org_slug}/usage/alerts"' not in html  # viewers cannot manage alerts
    async with client_for(usage_env.app, tenant.host) as client:
        asset = await client.get("/static/plugins/usage/vendor/chart.umd.min.js")
    assert asset.status_code == 200 and "Chart" in asset.text[:2000]


async def test_empty_states(usage_env):
    tenant = await usage_env.tenant(settings={"usage": {}})
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("member"))
        page = await client.get(f"/o/{tenant.org_slug}/usage")
    assert page.status_code == 200 and "No metered usage yet" in page.text
    tenant2 = await usage_env.tenant()
    async with client_for(usage_env.app, tenant2.host) as client:
        await login(client, tenant2.email("member"))
        page = await client.get(f"/o/{tenant2.org_slug}/usage")
    assert "Charts appear here once your systems report usage" not in page.text  # configured metrics have charts
    assert "no limit set" in page.text


async def test_usage_metrics_hook_and_overview_card(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 200}
    await put(tenant, "api_calls", 50, "x")
    ctx = ctx_for(usage_env.app, tenant)
    results = dict(await usage_env.app.state.portal.plugins.call(
        "portal_usage_metrics", tenant=ctx.tenant, ctx=ctx, org=ctx.organization))
    metrics = {m.key: m for m in results["usage"]}
    assert (metrics["api_calls"].used, metrics["api_calls"].limit) == (50, 200)
    assert metrics["transfer_gb"].used == 0
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        overview = await client.get(f"/o/{tenant.org_slug}/")
    assert "25%" in overview.text and "API calls: 50 of 200 this period" in overview.text


async def test_demo_seed_is_realistic_and_idempotent(usage_env):
    tenant = await usage_env.tenant()
    ctx = ctx_for(usage_env.app, tenant)
    org = {"id": tenant.org_id, "slug": tenant.org_slug, "name": "Org"}
    first = await seed_usage(ctx, org)
    again = await seed_usage(ctx, org)
    assert first > 2 * 330 and again == 0
    dashboard = await build_dashboard(ctx, ctx.organization)
    monthly = dashboard.charts["api_calls"].monthly_values
    assert all(v > 0 for v in monthly[:-1]) and monthly[-2] > monthly[0]  # grows over the year
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == first
