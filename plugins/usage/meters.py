"""Metered usage to the payment provider (Stripe meter events): in batches, through the outbox, never twice.

``report_meters`` (run every few minutes by the app that runs the outbox worker, and by
``portal usage report-meters``) takes the closed hourly buckets whose ``quantity`` is
above what was already reported (``usage_hourly.reported``), and in ONE transaction
raises ``reported`` with a conditional update (``... WHERE reported = <value read>``)
and enqueues one outbox message per organization with a ``MeterEvent`` per bucket. So:

- a crash before the commit reports nothing and leaves the buckets for the next run;
- a crash after it leaves the message in the outbox, whose retries repeat the very same
  payload, hence the same ``identifier``s, which the provider counts once;
- two reporters racing (two processes, two cron runs) cannot both enqueue a bucket: the
  second one's conditional update matches no row (SQLite serialises the writers; on
  PostgreSQL the update waits for the first commit and then re-checks ``reported``).

A bucket's ``identifier`` is ``<org>:<metric>:<UTC hour>``; an event back-filled into an
hour that was already reported raises the bucket again and is reported as a delta whose
identifier also names what had been reported before (``...:after:<reported>``), so it is
deterministic too. Buckets count as closed two minutes after their hour ends. The outbox
handler calls ``portal_report_metered_usage`` (billing implements it for tenants on Stripe)
with ``strict=True``: a provider error raises and the outbox retries with back-off.
Tenants where no enabled plugin implements the hook are skipped and keep their buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from core.context import CurrentOrganization, system_context
from core.contracts import MeterEvent
from core.db import as_utc, atomic, utcnow
from core.outbox import enqueue
from core.tables import Organization
from plugins.usage.tables import UsageHourly

log = logging.getLogger("portal.usage.meters")

KIND = "usage.meter_events"
HOOK = "portal_report_metered_usage"
SETTLE = timedelta(minutes=2)
EVENTS_PER_MESSAGE = 100
BUCKETS_PER_RUN = 5000
INTERVAL_SECONDS = 300.0
MAX_IDENTIFIER = 100  # Stripe's limit for a meter event identifier


def identifier(org_id: uuid.UUID, metric: str, hour: datetime, reported_before: float) -> str:
    """The deterministic identifier of one report of a bucket (the first, or a later delta)."""
    text = f"{org_id.hex}:{metric}:{hour:%Y%m%dT%H}"
    if reported_before:
        text += f":after:{reported_before:g}"
    if len(text) > MAX_IDENTIFIER:
        text = f"{org_id.hex}:{hashlib.sha256(text.encode()).hexdigest()[:64]}"
    return text


def _hour(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    result = as_utc(moment)
    assert result is not None
    return result


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def wants_meters(runtime: Any, tenant: Any) -> bool:
    """Whether an enabled plugin of the tenant reports metered usage (else its buckets are left alone)."""
    return runtime.plugins.is_enabled("usage", tenant) and any(
        impl.plugin_name in runtime.plugins.enabled_for(tenant)
        for impl in getattr(runtime.plugins.pm.hook, HOOK).get_hookimpls())


async def _claim(tenant_id: uuid.UUID, row: dict[str, Any]) -> bool:
    """Mark a bucket reported up to the quantity read, unless someone else did meanwhile."""
    updated = await UsageHourly.raw(
        "UPDATE usage_hourly SET reported = {} WHERE id = {} AND tenant = {} AND reported = {} RETURNING id",
        row["quantity"], row["id"], tenant_id, row["reported"])
    return bool(updated)


async def report_tenant(tenant_id: uuid.UUID, *, now: datetime | None = None,
                        limit: int = BUCKETS_PER_RUN) -> int:
    """Queue the tenant's closed, unreported buckets as meter events; returns how many events were queued."""
    cutoff = (now or utcnow()) - SETTLE - timedelta(hours=1)
    queued = 0
    async with atomic():
        rows = await UsageHourly.raw(
            "SELECT id, organization, metric, hour, quantity, reported FROM usage_hourly "
            "WHERE tenant = {} AND hour <= {} AND quantity > reported "
            "ORDER BY organization, metric, hour LIMIT {}", tenant_id, cutoff, limit)
        by_org: dict[uuid.UUID, list[MeterEvent]] = defaultdict(list)
        for row in rows:
            if not await _claim(tenant_id, row):
                continue
            org_id, hour = _uuid(row["organization"]), _hour(row["hour"])
            by_org[org_id].append(MeterEvent(row["metric"], float(row["quantity"]) - float(row["reported"]), hour,
                                             identifier(org_id, row["metric"], hour, float(row["reported"]))))
        if not by_org:
            return 0
        orgs = {r["id"]: r for r in await Organization.select(Organization.id, Organization.slug, Organization.name)
                .where(Organization.id.is_in(list(by_org)), Organization.tenant == tenant_id)}
        for org_id, events in by_org.items():
            org = orgs.get(org_id)
            if org is None:
                continue
            for start in range(0, len(events), EVENTS_PER_MESSAGE):
                chunk = events[start:start + EVENTS_PER_MESSAGE]
                await enqueue(KIND, {
                    "organization": str(org_id), "slug": org["slug"], "name": org["name"],
                    "events": [{"metric": e.metric, "quantity": e.quantity, "timestamp": e.timestamp.isoformat(),
                                "identifier": e.identifier} for e in chunk],
                }, tenant_id=tenant_id, dedupe_key=f"{KIND}:{chunk[0].identifier}:{len(chunk)}")
                queued += len(chunk)
    return queued


async def report_meters(runtime: Any, *, now: datetime | None = None, tenant_slug: str | None = None) -> int:
    """One reporter pass over every tenant that bills metered usage; returns the events queued."""
    await runtime.directory.ensure_fresh()
    total = 0
    for tenant in list(runtime.directory._by_id.values()):  # the snapshot of active tenants
        if (tenant_slug and tenant.slug != tenant_slug) or not wants_meters(runtime, tenant):
            continue
        while True:  # a tenant with a backlog is drained in slices of BUCKETS_PER_RUN
            queued = await report_tenant(tenant.id, now=now)
            total += queued
            if queued < BUCKETS_PER_RUN:
                break
    return total


async def deliver_meter_events(payload: dict[str, Any], *, tenant_id: uuid.UUID | None, app: Any,
                               message_id: Any = None) -> None:
    """Outbox handler: hand one organization's batch to ``portal_report_metered_usage`` (raise → retry)."""
    runtime = app.state.portal
    await runtime.directory.ensure_fresh()
    tenant = runtime.directory.get(tenant_id) if tenant_id else None
    if tenant is None:
        log.warning("meter events for unknown tenant %s dropped", tenant_id)
        return
    org = CurrentOrganization(uuid.UUID(payload["organization"]), payload["slug"], payload["name"])
    events = [MeterEvent(e["metric"], float(e["quantity"]), datetime.fromisoformat(e["timestamp"]), e["identifier"])
              for e in payload["events"]]
    ctx = system_context(runtime, tenant, organization=org)
    await runtime.plugins.call(HOOK, tenant=tenant, strict=True, ctx=ctx, org=org, events=events)


async def reporter_loop(app: Any, interval: float = INTERVAL_SECONDS) -> None:
    """Run ``report_meters`` every ``interval`` seconds in the app (next to its outbox worker)."""
    while True:
        await asyncio.sleep(interval)
        try:
            queued = await report_meters(app.state.portal)
            worker = app.state.portal.state.get("outbox_worker")
            if queued and worker is not None:
                worker.wake()
        except Exception:  # noqa: BLE001 - a database hiccup must not stop the reporter
            log.exception("usage meter reporter pass failed")


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel the reporter loop (app shutdown)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
