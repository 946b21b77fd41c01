"""Alerts fire once per threshold and period, by mail (outbox) and in-app notification; org picks the levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.tables import DevMail, Notification
from core.testing import client_for, form_post, login
from core.testing import deliver_outbox as deliver
from plugins.usage.alerts import check_alerts
from plugins.usage.service import NewEvent, record_events
from plugins.usage.tables import UsageAlertFired

from .helpers import ctx_for
from .test_ingest import event


async def mails_for(tenant) -> list[dict]:
    return await DevMail.select().where(DevMail.tenant == tenant.id).order_by(DevMail.created_at)


async def test_thresholds_fire_once_per_period(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 100}
    async with usage_env.api(tenant) as api:
        await api.post("/api/v1/usage/events", json=event("a", 40))
        await deliver(usage_env.app)
        assert await mails_for(tenant) == []
        await api.post("/api/v1/usage/events", json=event("b", 15))  # 55%: crosses 50
        await api.post("/api/v1/usage/events", json=event("b", 15))  # a retry: nothing new
        await api.post("/api/v1/usage/events", json=event("c", 1))   # 56%: still only 50 crossed
        await deliver(usage_env.app)
        mails = await mails_for(tenant)
        assert sorted(m["recipient"] for m in mails) == sorted(tenant.email(r) for r in ("owner", "admin", "billing"))
        assert all("reached 50%" in m["subject"] and "55 of 100" in m["text"] for m in mails)
        assert f"/o/{tenant.org_slug}/usage" in mails[0]["text"]
        await api.post("/api/v1/usage/events", json={"events": [event("d", 30), event("e", 20)]})  # 106%
        await deliver(usage_env.app)
    mails = await mails_for(tenant)
    assert len(mails) == 6  # one more per recipient, naming the highest threshold crossed (80 and 100 at once)
    assert sum("reached 100%" in m["subject"] for m in mails) == 3
    assert "overage" in [m for m in mails if "100%" in m["subject"]][0]["text"]
    notes = await Notification.select().where(Notification.tenant == tenant.id)
    assert len(notes) == 6 and {n["link"] for n in notes} == {f"/o/{tenant.org_slug}/usage"}
    fired = await UsageAlertFired.select(UsageAlertFired.threshold).where(UsageAlertFired.organization == tenant.org_id)
    assert sorted(r["threshold"] for r in fired) == [50, 80, 100]
    # checking again (the cron command) changes nothing
    ctx = ctx_for(usage_env.app, tenant)
    assert await check_alerts(ctx, ctx.organization) == []


async def test_backfill_into_the_last_period_does_not_alert_this_one(usage_env):
    """The ingest alert check takes the period totals its upsert returned: only the current month's count."""
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 100}
    berlin = ZoneInfo("Europe/Berlin")
    first_of_month = datetime.now(berlin).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_period = (first_of_month - timedelta(hours=12)).astimezone(UTC)  # noon of last month's last day
    async with usage_env.api(tenant) as api:
        answer = await api.post("/api/v1/usage/events", json=event("old", 95, at=last_period))
        assert answer.status_code == 200 and answer.json()["accepted"] == 1
        await api.post("/api/v1/usage/events", json=event("new", 10))  # 10% of this period
        await deliver(usage_env.app)
        assert await mails_for(tenant) == []
        await api.post("/api/v1/usage/events", json=event("more", 45))  # 55% of this period
        await deliver(usage_env.app)
    mails = await mails_for(tenant)
    assert mails and all("reached 50%" in m["subject"] and "55 of 100" in m["text"] for m in mails)


async def test_next_period_fires_again_and_seats_via_check(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 10, "seats": 4}
    usage_env.team.seats[tenant.org_id] = 4
    berlin = ZoneInfo("Europe/Berlin")
    march, april = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC)
    ctx = ctx_for(usage_env.app, tenant)
    await record_events(tenant.id, tenant.org_id, [NewEvent("api_calls", 6, march - timedelta(days=1), "m")], berlin)
    first = await check_alerts(ctx, ctx.organization, now=march)
    assert {(a.metric, a.threshold) for a in first} == {("api_calls", 50), ("seats", 100)}
    assert await check_alerts(ctx, ctx.organization, now=march) == []
    await record_events(tenant.id, tenant.org_id, [NewEvent("api_calls", 6, april - timedelta(days=1), "a")], berlin)
    again = await check_alerts(ctx, ctx.organization, now=april)
    assert {(a.metric, a.threshold) for a in again} == {("api_calls", 50), ("seats", 100)}


async def test_no_limit_or_unlimited_never_alerts(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": -1}
    async with usage_env.api(tenant) as api:
        await api.post("/api/v1/usage/events", json=event("a", 10_000))
        await api.post("/api/v1/usage/events", json=event("b", 10_000, metric="transfer_gb"))
    await deliver(usage_env.app)
    assert await mails_for(tenant) == []


async def test_alert_settings_page(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.limits[tenant.org_id] = {"api_calls": 100}
    path = f"/o/{tenant.org_slug}/usage/alerts"
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("member"))
        assert (await client.get(path)).status_code == 403
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        page = await client.get(path)
        assert page.status_code == 200 and 'value="50, 80, 100"' in page.text and "API calls" in page.text
        bad = await form_post(client, path, {"thresholds": "50, lots"}, token_from=path)
        assert bad.status_code == 400 and "&#39;lots&#39; is not a whole percentage" in bad.text
        saved = await form_post(client, path, {"thresholds": "90%, 30"}, token_from=path)
        assert saved.status_code == 303
        assert 'value="30, 90"' in (await client.get(saved.headers["location"])).text
    async with usage_env.api(tenant) as api:
        await api.post("/api/v1/usage/events", json=event("x", 50))  # 50%: crosses only the new 30
    await deliver(usage_env.app)
    assert {m["subject"].split(" reached ")[1] for m in await mails_for(tenant)} == {"30% of your plan limit"}
