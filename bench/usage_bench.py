"""Usage plugin benchmark: dashboard data from rollups vs from raw events, and ingest throughput.

    .venv/bin/python bench/usage_bench.py --db sqlite   [--events 1000000 --orgs 100]
    .venv/bin/python bench/usage_bench.py --db postgres (a throwaway cluster, as the tests use)

1. Seeds ``--events`` raw events (12 months, 3 metrics) across ``--orgs`` organizations
   through the real write path (``record_events``: raw rows + rollup upserts, 1,000 per call).
   The issue asks for 10 M events across 1,000 organizations; the default keeps the same
   density per organization (10,000 events each) at a tenth of the size so a run fits in minutes.
2. For sampled organizations, computes the usage page's numbers (period totals, 30 daily and
   12 monthly values per metric, last 24 hours) from the rollups, and the same numbers from the
   raw events in the same run, checks they agree, and prints p50/p95 and the ratio.
3. Ingest through the full HTTP stack (ASGI in-process, API-key guard, validation, transaction,
   rollups, alert check): batches of 100 and single events, sequential and 8 concurrent clients.
Wall-clock numbers depend on the machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ("api_calls", "transfer_gb", "compute_minutes")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000


async def raw_numbers(org_id: uuid.UUID, period_start: date, today: date, now: datetime) -> dict[str, Any]:
    """The page's numbers straight from usage_event (what rollups save us from)."""
    from core.db import is_sqlite
    from plugins.usage.tables import UsageEvent

    start = datetime.combine(period_start, datetime.min.time(), tzinfo=UTC)
    d30 = datetime.combine(today - timedelta(days=29), datetime.min.time(), tzinfo=UTC)
    first_month = date(period_start.year - (period_start.month <= 11), (period_start.month - 12) % 12 + 1, 1)
    m12 = datetime.combine(first_month, datetime.min.time(), tzinfo=UTC)
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    day = "substr(occurred_at, 1, 10)" if is_sqlite() else "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    month = "substr(occurred_at, 1, 7)" if is_sqlite() else "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    q = UsageEvent.raw
    totals = await q("SELECT metric, SUM(quantity) AS s FROM usage_event WHERE organization = {} "
                     "AND occurred_at >= {} GROUP BY metric", org_id, start)
    daily = await q(f"SELECT metric, {day} AS d, SUM(quantity) AS s FROM usage_event WHERE organization = {{}} "
                    f"AND occurred_at >= {{}} GROUP BY metric, {day}", org_id, d30)
    monthly = await q(f"SELECT metric, {month} AS m, SUM(quantity) AS s FROM usage_event WHERE organization = {{}} "
                      f"AND occurred_at >= {{}} GROUP BY metric, {month}", org_id, m12)
    recent = await q("SELECT metric, SUM(quantity) AS s FROM usage_event WHERE organization = {} "
                     "AND occurred_at >= {} GROUP BY metric", org_id, since)
    return {
        "totals": {r["metric"]: r["s"] for r in totals},
        "daily": {(r["metric"], str(r["d"])): r["s"] for r in daily},
        "monthly": {(r["metric"], str(r["m"])): r["s"] for r in monthly},
        "recent": {r["metric"]: r["s"] for r in recent},
    }


async def rollup_numbers(org_id: uuid.UUID, period_start: date, today: date, now: datetime) -> dict[str, Any]:
    """The same numbers as the page reads them (plugins.usage.queries, rollups only)."""
    from plugins.usage.periods import add_months
    from plugins.usage.queries import daily_between, last_hours, monthly_between, totals_between

    end = today + timedelta(days=1)
    totals = await totals_between(org_id, period_start, add_months(period_start, 1))
    daily = await daily_between(org_id, today - timedelta(days=29), end)
    monthly = await monthly_between(org_id, add_months(period_start, -11), add_months(period_start, 1))
    recent = await last_hours(org_id, now)
    return {
        "totals": totals,
        "daily": {(m, d.isoformat()): v for m, days in daily.items() for d, v in days.items()},
        "monthly": {(m, k): v for m, months in monthly.items() for k, v in months.items()},
        "recent": recent,
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal up to float rounding."""
    return all(set(a[k]) == set(b[k]) and all(abs(a[k][x] - b[k][x]) < 1e-6 * max(1, abs(a[k][x])) for x in a[k])
               for k in a)


async def seed(tenant_id: uuid.UUID, orgs: list[uuid.UUID], events: int, now: datetime) -> float:
    """Write ``events`` events spread over 12 months and the orgs; returns events/s of the write path."""
    from zoneinfo import ZoneInfo

    from plugins.usage.service import NewEvent, record_events

    rng = random.Random(7)
    per_org = events // len(orgs)
    span = 365 * 24 * 3600
    started = time.perf_counter()
    written = 0
    for org in orgs:
        batch: list[NewEvent] = []
        for i in range(per_org):
            at = now - timedelta(seconds=rng.randrange(span))
            batch.append(NewEvent(METRICS[i % 3], float(rng.randint(1, 50)), at, f"seed-{i}"))
            if len(batch) == 1000:
                await record_events(tenant_id, org, batch, ZoneInfo("UTC"), now=now)
                written += len(batch)
                batch = []
        if batch:
            await record_events(tenant_id, org, batch, ZoneInfo("UTC"), now=now)
            written += len(batch)
        print(f"\r  seeded {written:,} events", end="", flush=True)
    print()
    return written / (time.perf_counter() - started)


async def ingest_http(app: Any, host: str, token: str, *, batch: int, requests: int, concurrency: int) -> dict:
    """Post ``requests`` bodies of ``batch`` events with ``concurrency`` clients; events/s, req/s, p50/p99."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    latencies: list[float] = []
    counter = iter(range(requests))
    run = uuid.uuid4().hex[:6]

    async def client_loop() -> None:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for n in counter:
                now = datetime.now(UTC).isoformat()
                items = [{"metric": METRICS[j % 3], "quantity": 1, "timestamp": now,
                          "idempotency_key": f"{run}-{n}-{j}"} for j in range(batch)]
                body = {"events": items} if batch > 1 else items[0]
                t0 = time.perf_counter()
                response = await client.post("/api/v1/usage/events", json=body)
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*[client_loop() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    return {"events_s": requests * batch / elapsed, "req_s": requests / elapsed,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99)}


async def main(args: argparse.Namespace) -> None:
    """Run the three measurements on one database and print a table."""
    from core.testing import ThrowawayPostgres

    pg = None
    var = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    os.environ.update({"PORTAL_ENV": "test", "PORTAL_VAR_DIR": str(var), "PORTAL_OUTBOX_WORKER": "false",
                       "PORTAL_MAIL_BACKEND": "dev", "PORTAL_PASSWORD_HASH_PROFILE": "test",
                       "PORTAL_SECRET_KEY": "bench-secret-" + "x" * 32})
    if args.db == "postgres":
        pg = ThrowawayPostgres()
        os.environ["PORTAL_DATABASE_URL"] = pg.start()
    else:
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{var / 'bench.db'}"
    try:
        await run(args)
    finally:
        from core.db import disconnect

        await disconnect()
        if pg is not None:
            pg.stop()


async def run(args: argparse.Namespace) -> None:
    """The benchmark proper (database configured)."""
    import msgspec

    from core import hookimpl
    from core.app import create_app
    from core.context import Actor, ApiPrincipal, CurrentOrganization
    from core.contracts import PluginInfo
    from core.db import connect, use_database
    from core.manifests import TenantManifest, apply_manifest
    from core.migrate import migrate_all
    from core.security import Passwords
    from core.settings import load_settings
    from core.tables import Organization, Tenant
    from core.testing import running
    from plugins.usage.periods import current_period

    settings = load_settings(load_entry_points=False)
    use_database(settings.database_url)
    await connect()
    await migrate_all()
    orgs = [{"slug": f"org-{i:04d}", "name": f"Org {i}", "members": []} for i in range(args.orgs)]
    manifest = msgspec.convert({
        "slug": "bench", "name": "Bench", "domains": ["bench.example.test"], "plugins": ["usage", "bench-auth"],
        "settings": {"usage": {"timezone": "UTC", "backfill_days": 400, "metrics": {m: {} for m in METRICS}}},
        "organizations": orgs,
    }, TenantManifest)
    await apply_manifest(manifest, Path("."), Passwords("test"))
    tenant = await Tenant.select(Tenant.id).where(Tenant.slug == "bench").first()
    org_rows = await Organization.select(Organization.id, Organization.slug).where(
        Organization.tenant == tenant["id"]).order_by(Organization.slug)
    org_ids = [r["id"] for r in org_rows]
    now = datetime.now(UTC)
    print(f"database: {args.db}; {args.events:,} events across {args.orgs} organizations")
    write_rate = await seed(tenant["id"], org_ids, args.events, now)

    period = current_period(now, __import__("zoneinfo").ZoneInfo("UTC"))
    sample = random.Random(3).sample(org_ids, min(args.samples, len(org_ids)))
    rollup_t, raw_t = [], []
    for org in sample:
        t0 = time.perf_counter()
        fast = await rollup_numbers(org, period.start, now.date(), now)
        rollup_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        slow = await raw_numbers(org, period.start, now.date(), now)
        raw_t.append(time.perf_counter() - t0)
        assert same(fast, slow), f"rollups and raw events disagree for {org}"

    class BenchAuth:
        @hookimpl
        def portal_plugin(self) -> PluginInfo:
            return PluginInfo("bench-auth", "Bench auth", "1.0")

        @hookimpl
        def portal_authenticate_api(self, ctx: Any, authorization: str) -> ApiPrincipal:
            org = org_rows[0]
            return ApiPrincipal(Actor("api_key", "bench", "bench"), CurrentOrganization(org["id"], org["slug"], "B"),
                                frozenset({"usage.write", "usage.read"}))

    app = create_app(settings.with_overrides(outbox_worker=False), extra_plugins=[BenchAuth()])
    async with running(app):
        batch_seq = await ingest_http(app, "bench.example.test", "k", batch=100, requests=args.requests,
                                      concurrency=1)
        batch_par = await ingest_http(app, "bench.example.test", "k", batch=100, requests=args.requests,
                                      concurrency=8)
        single_seq = await ingest_http(app, "bench.example.test", "k", batch=1, requests=args.requests * 3,
                                       concurrency=1)
        single_par = await ingest_http(app, "bench.example.test", "k", batch=1, requests=args.requests * 3,
                                       concurrency=8)

    print(f"\nwrite path while seeding (record_events, 1,000 per call): {write_rate:,.0f} events/s")
    print(f"usage page data, {len(sample)} organizations of {args.events // args.orgs:,} events each:")
    print(f"  from rollups   p50 {pct(rollup_t, 50):7.2f} ms   p95 {pct(rollup_t, 95):7.2f} ms")
    print(f"  from raw       p50 {pct(raw_t, 50):7.2f} ms   p95 {pct(raw_t, 95):7.2f} ms")
    print(f"  ratio raw/rollups at p50: {pct(raw_t, 50) / pct(rollup_t, 50):.1f}x, "
          f"at p95: {pct(raw_t, 95) / pct(rollup_t, 95):.1f}x")
    print("ingest over HTTP (in-process ASGI, full stack):")
    for name, r in (("batches of 100, 1 client ", batch_seq), ("batches of 100, 8 clients", batch_par),
                    ("single events,  1 client ", single_seq), ("single events,  8 clients", single_par)):
        print(f"  {name}: {r['events_s']:9,.0f} events/s  {r['req_s']:7,.0f} req/s  "
              f"p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
