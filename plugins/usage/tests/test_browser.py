"""The dashboard in a real browser (Debian Chromium via Playwright): charts render, themed; screenshots saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.context import CurrentOrganization
from core.testing import PASSWORD, artifact, headless_chromium, live_server
from plugins.usage.metrics import ingested_metrics
from plugins.usage.seed import seed_usage
from plugins.usage.service import NewEvent, record_events

from .conftest import PRO
from .helpers import ctx_for

pytestmark = pytest.mark.browser


@pytest.fixture
async def served(usage_env):
    """The usage test app on a loopback port, served by uvicorn in this event loop."""
    async with live_server(usage_env.app) as port:
        yield port


async def test_dashboard_in_chromium(usage_env, served):
    tenant = await usage_env.tenant(branding={"product_name": "Meter Cloud", "primary_color": "#0f766e",
                                              "accent_color": "#be123c"})
    ctx = ctx_for(usage_env.app, tenant)
    await seed_usage(ctx, CurrentOrganization(tenant.org_id, tenant.org_slug, "Org"))
    now = datetime.now(UTC)
    await record_events(tenant.id, tenant.org_id, [NewEvent("transfer_gb", 9000, now - timedelta(minutes=5), "big")],
                        ZoneInfo("Europe/Berlin"))
    # limits from what the seed wrote (it depends on the date and the random org id): api calls well within
    # the plan (the bar keeps the tenant's colour), transfer at 97% (critical, with the upgrade link)
    ctx.cache.clear()
    used = {m.key: m.used for m in await ingested_metrics(ctx, ctx.organization)}
    usage_env.billing.limits[tenant.org_id] = {"api_calls": max(1000, used["api_calls"] * 4),
                                               "transfer_gb": used["transfer_gb"] / 0.97, "seats": 10}
    usage_env.billing.summaries[tenant.org_id] = PRO
    usage_env.team.seats[tenant.org_id] = 4
    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1360, "height": 1500})
        base = f"http://{tenant.host}:{served}"
        await page.goto(f"{base}/login")
        await page.fill("input[name=email]", tenant.email("owner"))
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_load_state("networkidle")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/o/{tenant.org_slug}/usage")
        await page.wait_for_selector("#usage-monthly-chart[data-rendered=true]")
        await page.wait_for_selector("#usage-daily-chart[data-rendered=true]")
        assert errors == []
        assert await page.locator("tr[data-metric=transfer_gb]").get_attribute("data-state") == "critical"
        assert await page.locator("tr[data-metric=transfer_gb] >> text=Upgrade plan").count() == 1
        assert "Estimate" in await page.locator("[data-testid=projected-bill]").locator("..").inner_text()
        # the bar uses the tenant's primary colour; the charts drew pixels on their canvases
        fill = await page.locator("tr[data-metric=api_calls] .usage-bar-fill").evaluate(
            "el => getComputedStyle(el).backgroundColor")
        assert fill == "rgb(15, 118, 110)"
        painted = await page.locator("#usage-monthly-chart").evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")
        assert painted > 1000
        await page.screenshot(path=artifact("usage-dashboard.png"), full_page=True)
        await page.select_option("#chart-metric", "transfer_gb")
        await page.wait_for_url("**metric=transfer_gb")
        await page.wait_for_selector("#usage-monthly-chart[data-rendered=true]")
        await page.screenshot(path=artifact("usage-dashboard-transfer.png"), full_page=True)
        await page.goto(f"{base}/o/{tenant.org_slug}/usage/alerts")
        await page.screenshot(path=artifact("usage-alerts.png"), full_page=True)
