"""Group commit: requests sharing a transaction still succeed or fail on their own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.context import CurrentOrganization
from plugins.usage.service import NewEvent
from plugins.usage.tables import UsageDaily, UsageEvent
from plugins.usage.writer import GroupWriter

from .helpers import add_organization, ctx_for

BERLIN = ZoneInfo("Europe/Berlin")


def events(prefix: str, count: int) -> list[NewEvent]:
    at = datetime.now(UTC) - timedelta(minutes=2)
    return [NewEvent("api_calls", 2, at, f"{prefix}-{i}") for i in range(count)]


async def test_a_failing_request_does_not_fail_the_others_in_its_transaction(usage_env, caplog):
    tenant = await usage_env.tenant()
    ctx = ctx_for(usage_env.app, tenant)
    other = await add_organization(tenant.id)
    gone = CurrentOrganization(uuid.uuid4(), "gone", "Deleted meanwhile")  # no such row: the insert breaks its FK
    writer = GroupWriter()
    now = datetime.now(UTC)
    try:
        results = await asyncio.gather(
            writer.write(ctx, ctx.organization, events("a", 3), BERLIN, now),
            writer.write(ctx, gone, events("b", 2), BERLIN, now),
            writer.write(ctx, other, events("c", 4), BERLIN, now),
            return_exceptions=True)
    finally:
        await writer.stop()
    assert results[0] == {"a-0", "a-1", "a-2"}
    assert isinstance(results[1], Exception)
    assert results[2] == {f"c-{i}" for i in range(4)}
    assert "a shared ingest transaction of 3 requests failed" in caplog.text
    assert writer.transactions == 2 and writer.jobs == 2  # the shared one failed; two retried alone committed
    rows = await UsageEvent.select(UsageEvent.organization, UsageEvent.idempotency_key).where(
        UsageEvent.tenant == tenant.id)
    assert sorted(r["idempotency_key"] for r in rows) == ["a-0", "a-1", "a-2", "c-0", "c-1", "c-2", "c-3"]
    totals = {r["organization"]: r["quantity"] for r in await UsageDaily.select(
        UsageDaily.organization, UsageDaily.quantity).where(UsageDaily.tenant == tenant.id)}
    assert totals == {tenant.org_id: 6.0, other.id: 8.0}  # rolled up once each, nothing of the failed request


@pytest.mark.parametrize("requests", [1, 20])
async def test_concurrent_requests_share_transactions_and_get_their_own_answers(usage_env, requests):
    tenant = await usage_env.tenant()
    ctx = ctx_for(usage_env.app, tenant)
    writer = GroupWriter()
    now = datetime.now(UTC)
    try:
        results = await asyncio.gather(*(writer.write(ctx, ctx.organization, events(f"r{n}", 2) + events("shared", 1),
                                                      BERLIN, now) for n in range(requests)))
    finally:
        await writer.stop()
    assert results[0] == {"r0-0", "r0-1", "shared-0"}  # the first request owns the key they all sent
    assert all(result == {f"r{n}-0", f"r{n}-1"} for n, result in enumerate(results) if n)
    assert writer.jobs == requests and writer.transactions <= max(1, requests // 2)
    assert await UsageEvent.count().where(UsageEvent.tenant == tenant.id) == 2 * requests + 1
