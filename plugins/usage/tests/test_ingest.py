"""The ingest API: single events and batches, idempotency, atomicity and validation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from plugins.usage.tables import UsageDaily, UsageEvent, UsageHourly


def event(key: str, quantity: float = 1, metric: str = "api_calls", at: datetime | None = None, **extra):
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    return {"metric": metric, "quantity": quantity, "timestamp": at.isoformat().replace("+00:00", "Z"),
            "idempotency_key": key, **extra}


async def daily_total(org_id, metric="api_calls") -> float:
    rows = await UsageDaily.select(UsageDaily.quantity).where(UsageDaily.organization == org_id,
                                                              UsageDaily.metric == metric)
    return sum(r["quantity"] for r in rows)


async def test_single_event_is_recorded_and_rolled_up(usage_env):
    tenant = await usage_env.tenant()
    async with usage_env.api(tenant) as api:
        response = await api.post("/api/v1/usage/events", json=event("k1", 5, dimensions={"region": "eu"}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert body["items"] == [{"index": 0, "idempotency_key": "k1", "status": "accepted", "errors": []}]
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 1
    assert await daily_total(tenant.org_id) == 5
    hourly = await UsageHourly.select().where(UsageHourly.organization == tenant.org_id)
    assert [(r["quantity"], r["events"]) for r in hourly] == [(5, 1)]


async def test_batch_of_100_counts_once_when_repeated(usage_env):
    tenant = await usage_env.tenant()
    batch = {"events": [event(f"b{i}", 2) for i in range(100)]}
    async with usage_env.api(tenant) as api:
        first = await api.post("/api/v1/usage/events", json=batch)
        again = await api.post("/api/v1/usage/events", json=batch)
    assert first.status_code == 200 and first.json()["accepted"] == 100
    assert again.status_code == 200
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 100
    assert {i["status"] for i in again.json()["items"]} == {"duplicate"}
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 100
    assert await daily_total(tenant.org_id) == 200


async def test_duplicate_keys_inside_one_batch_count_once(usage_env):
    tenant = await usage_env.tenant()
    async with usage_env.api(tenant) as api:
        response = await api.post("/api/v1/usage/events", json={"events": [event("same", 3), event("same", 3)]})
    assert [i["status"] for i in response.json()["items"]] == ["accepted", "duplicate"]
    assert await daily_total(tenant.org_id) == 3


async def test_concurrent_duplicates_count_once(usage_env):
    tenant = await usage_env.tenant()
    batch = {"events": [event(f"c{i}", 1) for i in range(20)]}
    async with usage_env.api(tenant) as api:
        responses = await asyncio.gather(*[api.post("/api/v1/usage/events", json=batch) for _ in range(6)])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sum(r.json()["accepted"] for r in responses) == 20
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 20
    assert await daily_total(tenant.org_id) == 20


async def test_batch_with_one_bad_event_writes_nothing(usage_env):
    tenant = await usage_env.tenant()
    items = [event("ok1", 1), event("bad", -4), event("ok2", 1, metric="nonsense"), event("ok3", "many")]
    async with usage_env.api(tenant) as api:
        response = await api.post("/api/v1/usage/events", json={"events": items})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed" and "nothing was recorded" in body["detail"]
    errors = {item["index"]: item["errors"] for item in body["items"]}
    assert set(errors) == {1, 2, 3}
    assert errors[1] == ["quantity: must not be negative"]
    assert "unknown metric 'nonsense'" in errors[2][0] and "api_calls" in errors[2][0]
    assert errors[3] == ["quantity: must be a number"]
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 0
    assert await UsageDaily.count().where(UsageDaily.organization == tenant.org_id) == 0


async def test_time_window_and_shape_errors(usage_env):
    tenant = await usage_env.tenant()
    now = datetime.now(UTC)
    cases = {
        "future": (event("f", 1, at=now + timedelta(hours=2)), "in the future"),
        "old": (event("o", 1, at=now - timedelta(days=40)), "back-fill window of 35 days"),
        "naive": ({**event("n"), "timestamp": "2024-01-01T00:00:00"}, "UTC offset"),
        "garbage time": ({**event("g"), "timestamp": "yesterday"}, "RFC 3339"),
        "missing key": ({k: v for k, v in event("m").items() if k != "idempotency_key"},
                        "idempotency_key: is required"),
        "extra field": ({**event("x"), "price": 3}, "price: is not a field"),
        "huge": (event("h", 1e300), "finite number"),
    }
    async with usage_env.api(tenant) as api:
        for name, (item, message) in cases.items():
            response = await api.post("/api/v1/usage/events", json=item)
            assert response.status_code == 422, name
            assert message in " ".join(response.json()["items"][0]["errors"]), (name, response.json())
        too_many = await api.post("/api/v1/usage/events", json={"events": [event(f"t{i}") for i in range(101)]})
        empty = await api.post("/api/v1/usage/events", json={"events": []})
        not_json = await api.post("/api/v1/usage/events", content=b"{nope",
                                  headers={"content-type": "application/json"})
        seats = await api.post("/api/v1/usage/events", json=event("s", 1, metric="seats"))
    assert too_many.status_code == 422 and "at most 100" in too_many.json()["detail"]
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
    assert seats.status_code == 422
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 0


async def test_seats_of_another_plugin_cannot_be_reported(usage_env):
    tenant = await usage_env.tenant()
    usage_env.team.seats[tenant.org_id] = 3
    async with usage_env.api(tenant) as api:
        response = await api.post("/api/v1/usage/events", json=event("s", 1, metric="seats"))
    assert response.status_code == 422
    assert "measured by the portal itself (Test team)" in response.json()["items"][0]["errors"][0]


async def test_authentication_and_permission(usage_env):
    tenant = await usage_env.tenant()
    read_only = usage_env.keys.issue(tenant.id, tenant.org_id, tenant.org_slug, ("usage.read",))
    async with usage_env.api(tenant, read_only) as api:
        forbidden = await api.post("/api/v1/usage/events", json=event("r"))
        summary = await api.get("/api/v1/usage/summary")
    async with usage_env.api(tenant, "wrong") as api:
        bad_key = await api.post("/api/v1/usage/events", json=event("w"))
    assert forbidden.status_code == 403
    assert summary.status_code == 200
    assert bad_key.status_code == 401
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 0
