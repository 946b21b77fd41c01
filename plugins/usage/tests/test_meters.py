"""Metered usage to the provider: closed hourly buckets, in batches, through the outbox, never double-reported.

The provider is the ``FakeBilling`` test plugin implementing ``portal_report_metered_usage``
(the hook billing implements for Stripe): it records every identifier it receives and,
like Stripe, counts an identifier once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.db import utcnow
from core.tables import OutboxMessage
from core.testing import deliver_outbox
from plugins.usage.meters import KIND, identifier, report_meters, report_tenant
from plugins.usage.service import NewEvent, record_events

from .conftest import USAGE_SETTINGS
from .helpers import add_organization

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
H1, H2, CURRENT = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def put(tenant_id, org_id, *events) -> None:
    await record_events(tenant_id, org_id, [NewEvent(m, q, at, key) for m, q, at, key in events], BERLIN)


async def messages(tenant_id) -> list[dict]:
    return await OutboxMessage.select().where(OutboxMessage.tenant == tenant_id, OutboxMessage.kind == KIND)


def totals(recorded) -> dict[str, float]:
    return {e.identifier: e.quantity for e in recorded}


async def test_closed_buckets_reported_once_per_org_with_deterministic_identifiers(usage_env):
    tenant = await usage_env.tenant()
    other_org = await add_organization(tenant.id)  # same tenant, not billed by metered usage
    other_tenant = await usage_env.tenant()
    billing = usage_env.billing
    billing.metered[tenant.org_id] = []
    billing.metered[other_tenant.org_id] = []
    await put(tenant.id, tenant.org_id, ("api_calls", 5, H1, "a"), ("api_calls", 7, H1 + timedelta(minutes=5), "b"),
              ("transfer_gb", 1.5, H2, "c"), ("api_calls", 100, CURRENT, "open-hour"))
    await put(tenant.id, other_org.id, ("api_calls", 9, H1, "x"))
    await put(other_tenant.id, other_tenant.org_id, ("api_calls", 11, H2, "y"))

    assert await report_tenant(tenant.id, now=NOW) == 3  # two orgs' closed buckets; the open hour waits
    assert await report_tenant(tenant.id, now=NOW) == 0  # nothing new
    assert len(await messages(tenant.id)) == 2  # one message per organization
    await deliver_outbox(usage_env.app)
    mine = billing.metered[tenant.org_id]
    assert totals(mine) == {identifier(tenant.org_id, "api_calls", hour_of(H1), 0): 12,
                            identifier(tenant.org_id, "transfer_gb", hour_of(H2), 0): 1.5}
    assert all(e.identifier.startswith(tenant.org_id.hex) and e.timestamp.tzinfo for e in mine)
    assert {e.timestamp for e in mine} == {hour_of(H1), hour_of(H2)}
    assert other_org.id not in billing.metered and billing.metered[other_tenant.org_id] == []  # not reported yet
    assert {m["status"] for m in await messages(tenant.id)} == {"sent"}  # the other org's plan answered None

    await report_meters(usage_env.app.state.portal, now=NOW)  # the periodic pass covers every tenant
    await deliver_outbox(usage_env.app)
    assert totals(billing.metered[other_tenant.org_id]) == {
        identifier(other_tenant.org_id, "api_calls", hour_of(H2), 0): 11}
    assert totals(billing.metered[tenant.org_id]) == totals(mine)  # the other tenant's pass added nothing here

    later = NOW + timedelta(hours=1)
    await put(tenant.id, tenant.org_id, ("api_calls", 3, H1 + timedelta(minutes=20), "late"))  # back-filled
    assert await report_tenant(tenant.id, now=later) == 2  # the late delta and the hour that closed meanwhile
    await deliver_outbox(usage_env.app)
    reported = totals(billing.metered[tenant.org_id])
    assert reported[identifier(tenant.org_id, "api_calls", hour_of(H1), 12)] == 3
    assert reported[identifier(tenant.org_id, "api_calls", hour_of(CURRENT), 0)] == 100
    assert sum(v for k, v in reported.items() if ":api_calls:" in k) == 5 + 7 + 3 + 100


async def test_a_crash_after_sending_repeats_identical_identifiers(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.metered[tenant.org_id] = []
    usage_env.billing.fail_after_send = 1
    await put(tenant.id, tenant.org_id, ("api_calls", 4, H1, "a"), ("transfer_gb", 2, H2, "b"))
    assert await report_tenant(tenant.id, now=NOW) == 2
    await deliver_outbox(usage_env.app)  # the provider got them, then the connection broke
    [message] = await messages(tenant.id)
    assert message["status"] == "pending" and message["attempts"] == 1 and "connection lost" in message["last_error"]
    first = [e.identifier for org, e in usage_env.billing.reported if org == tenant.org_id]
    assert await report_tenant(tenant.id, now=NOW) == 0  # the buckets are not queued a second time
    await OutboxMessage.update({OutboxMessage.next_attempt_at: utcnow()}).where(OutboxMessage.id == message["id"])
    await deliver_outbox(usage_env.app)  # the retry
    [message] = await messages(tenant.id)
    assert message["status"] == "sent"
    sent = [e.identifier for org, e in usage_env.billing.reported if org == tenant.org_id]
    assert sent == first + first  # the retry repeated the same identifiers...
    assert len(usage_env.billing.metered[tenant.org_id]) == 2  # ...which the provider counted once


async def test_concurrent_reporters_never_queue_a_bucket_twice(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.metered[tenant.org_id] = []
    await put(tenant.id, tenant.org_id, *[("api_calls", 1, H1 - timedelta(hours=i), f"k{i}") for i in range(30)])
    results = await asyncio.gather(*[report_tenant(tenant.id, now=NOW) for _ in range(4)])
    assert sum(results) == 30
    queued = [e["identifier"] for m in await messages(tenant.id) for e in _events(m)]
    assert len(queued) == len(set(queued)) == 30


def _events(message: dict) -> list[dict]:
    from core.db import load_json

    return load_json(message["payload"])["events"]


async def test_a_provider_error_is_retried_and_large_backlogs_are_batched(usage_env):
    tenant = await usage_env.tenant()
    usage_env.billing.metered[tenant.org_id] = []
    await put(tenant.id, tenant.org_id, *[("api_calls", 1, H1 - timedelta(hours=i), f"k{i}") for i in range(150)])
    assert await report_tenant(tenant.id, now=NOW) == 150
    sizes = sorted(len(_events(m)) for m in await messages(tenant.id))
    assert sizes == [50, 100]  # batches of at most 100 events


async def test_tenants_without_a_metered_billing_plugin_keep_their_buckets(usage_env):
    tenant = await usage_env.make_tenant(plugins=["usage", "usage-test-auth"], settings=USAGE_SETTINGS)
    await put(tenant.id, tenant.org_id, ("api_calls", 5, H1, "a"))
    assert await report_meters(usage_env.app.state.portal, now=NOW) >= 0
    assert await messages(tenant.id) == []
