"""CSV export content, and isolation between tenants and organizations for the API and the pages."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.testing import client_for, login
from plugins.usage.service import NewEvent, record_events

from .helpers import add_member, add_organization
from .test_ingest import event

BERLIN = ZoneInfo("Europe/Berlin")


async def test_csv_export_of_any_range(usage_env):
    tenant = await usage_env.tenant()
    at = lambda d, h=12: datetime(d.year, d.month, d.day, h, tzinfo=UTC)  # noqa: E731
    start = date.today() - timedelta(days=20)
    await record_events(tenant.id, tenant.org_id, [
        NewEvent("api_calls", 5, at(start), "a"), NewEvent("api_calls", 7, at(start), "b"),
        NewEvent("transfer_gb", 1.5, at(start + timedelta(days=2)), "c"),
        NewEvent("api_calls", 100, at(start - timedelta(days=1)), "before"),
    ], BERLIN)
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        response = await client.get(f"/o/{tenant.org_slug}/usage/export.csv",
                                    params={"start": start.isoformat(), "end": (start + timedelta(days=2)).isoformat()})
        one = await client.get(f"/o/{tenant.org_slug}/usage/export.csv",
                               params={"start": start.isoformat(), "end": start.isoformat(), "metric": "api_calls"})
        backwards = await client.get(f"/o/{tenant.org_slug}/usage/export.csv", params={"start": "2026-02-02",
                                                                                       "end": "2026-02-01"})
        unknown = await client.get(f"/o/{tenant.org_slug}/usage/export.csv", params={"metric": "seats"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["date", "metric", "quantity", "events"]
    d = [(start + timedelta(days=i)).isoformat() for i in range(3)]
    assert rows[1:] == [[d[0], "api_calls", "12", "2"], [d[0], "transfer_gb", "0", "0"],
                        [d[1], "api_calls", "0", "0"], [d[1], "transfer_gb", "0", "0"],
                        [d[2], "api_calls", "0", "0"], [d[2], "transfer_gb", "1.5", "1"]]
    assert list(csv.reader(io.StringIO(one.text)))[1:] == [[d[0], "api_calls", "12", "2"]]
    assert backwards.status_code == 400 and "start date is after the end date" in backwards.text
    assert unknown.status_code == 400


async def test_long_range_export_spans_months(usage_env):
    tenant = await usage_env.tenant()
    async with client_for(usage_env.app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        response = await client.get(f"/o/{tenant.org_slug}/usage/export.csv",
                                    params={"start": "2025-01-15", "end": "2025-03-14", "metric": "api_calls"})
    rows = list(csv.reader(io.StringIO(response.text)))[1:]
    assert len(rows) == 59 and rows[0][0] == "2025-01-15" and rows[-1][0] == "2025-03-14"


async def test_api_isolation_between_tenants_and_organizations(usage_env):
    one, two = await usage_env.tenant(), await usage_env.tenant()
    other_org = await add_organization(one.id)
    token_one = usage_env.keys.issue(one.id, one.org_id, one.org_slug)
    token_other = usage_env.keys.issue(one.id, other_org.id, other_org.slug)
    async with usage_env.api(one, token_one) as api:
        assert (await api.post("/api/v1/usage/events", json=event("k", 9))).status_code == 200
    async with usage_env.api(two, token_one) as api:  # tenant one's key on tenant two's host
        assert (await api.post("/api/v1/usage/events", json=event("k2", 9))).status_code == 401
        assert (await api.get("/api/v1/usage/summary")).status_code == 401
    async with usage_env.api(one, token_other) as api:
        summary = (await api.get("/api/v1/usage/summary")).json()
        same_key = await api.post("/api/v1/usage/events", json=event("k", 1))  # keys are per organization
        daily = (await api.get("/api/v1/usage/daily", params={"metric": "api_calls"})).json()
    assert {m["key"]: m["used"] for m in summary["metrics"]}["api_calls"] == 0
    assert same_key.json()["accepted"] == 1
    assert sum(d["quantity"] for d in daily["days"]) == 1
    async with usage_env.api(one, token_one) as api:
        mine = (await api.get("/api/v1/usage/summary")).json()
    assert {m["key"]: m["used"] for m in mine["metrics"]}["api_calls"] == 9


async def test_page_isolation_between_tenants_and_organizations(usage_env):
    one, two = await usage_env.tenant(), await usage_env.tenant()
    other_org = await add_organization(one.id, "neighbours-" + one.slug)
    await add_member(one.id, other_org.id, one.email("viewer"), "viewer")
    await record_events(one.id, one.org_id, [NewEvent("api_calls", 4321, datetime.now(UTC) - timedelta(minutes=1),
                                                      "secret")], BERLIN)
    async with client_for(usage_env.app, one.host) as client:
        await login(client, one.email("owner"))
        assert (await client.get(f"/o/{other_org.slug}/usage")).status_code == 404  # not a member there
        assert (await client.get(f"/o/{other_org.slug}/usage/export.csv")).status_code == 404
        assert (await client.get(f"/o/{two.org_slug}/usage")).status_code == 404  # another tenant's org
        assert "4,321" in (await client.get(f"/o/{one.org_slug}/usage")).text
    async with client_for(usage_env.app, one.host) as client:
        await login(client, one.email("viewer"))
        neighbours = await client.get(f"/o/{other_org.slug}/usage")
        export = await client.get(f"/o/{other_org.slug}/usage/export.csv", params={"metric": "api_calls"})
    assert neighbours.status_code == 200 and "4,321" not in neighbours.text
    assert all(row.split(",")[2] == "0" for row in export.text.splitlines()[1:])
    async with client_for(usage_env.app, two.host) as client:
        await login(client, two.email("owner"))
        assert (await client.get(f"/o/{one.org_slug}/usage")).status_code == 404
        assert "4,321" not in (await client.get(f"/o/{two.org_slug}/usage")).text
