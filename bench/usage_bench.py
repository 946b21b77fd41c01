"""Usage plugin benchmark: the usage page's data from rollups vs from raw events, and ingest over HTTP.

    .venv/bin/python bench/usage_bench.py --db sqlite   [--events 10000000 --orgs 1000]
    .venv/bin/python bench/usage_bench.py --db postgres (a throwaway cluster with fsync ON)

1. Seeds ``--events`` raw events (default the issue's 10 million) across ``--orgs``
   organizations (default 1,000) over the last 365 days, written day by day with the
   organizations interleaved in time order, as real traffic lands (an organization's
   events are spread over the whole table, not stored together). Rows go straight in
   with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL), and the hourly and daily
   rollups are summed in Python alongside, because the HTTP path would need hours for
   10 M events; step 2 checks every sampled organization's rollups against its raw events.
2. For ``--samples`` organizations (warm caches for both), the usage page's rollup numbers
   (period totals, 30 daily and 12 monthly values per metric, last 24 hours) through
   ``plugins.usage.queries.page_series`` — the one query the page runs — and the same
   numbers from the raw events with the same single-query shape. Both in this run, with
   p50/p95 and the ratio. Also the whole ``build_dashboard`` (every plugin's metrics hooks,
   plan limits) for reference.
3. Ingest over real HTTP: granian (``--workers``) serving ``bench.usage_app`` (the real app,
   API keys plugin authenticating real keys of 8 organizations, rate limit off), loaded by
   ``wrk`` (Lua script, unique idempotency keys): batches of 100 and single events. After
   each run the rows in ``usage_event`` are counted against the requests wrk completed.
Targets (issue 7): page data p95 <= 5 ms and >= 100x faster than raw; >= 10,000 events/s in
batches of 100; >= 1,000 single-event requests/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from uuid_utils import uuid7

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import free_port, start_granian, stop  # noqa: E402

METRICS = ("api_calls", "transfer_gb", "compute_minutes")
HOST = "bench.example.test"
DAYS = 365


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000


# -- the database -------------------------------------------------------------------------------------------


class DurablePostgres:
    """A throwaway PostgreSQL cluster with production durability (fsync and synchronous_commit on)."""

    def __init__(self) -> None:
        from core.testing import ThrowawayPostgres

        self.inner = ThrowawayPostgres()

    def start(self) -> str:
        """initdb, start with fsync on and 1 GB of shared buffers, create database ``portal``."""
        from core.testing import PG_BIN

        pg = self.inner
        if pg.as_root:
            shutil.chown(pg.root, "postgres")
        pg._run(str(PG_BIN / "initdb"), "-D", str(pg.data), "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                "-U", "portal")
        pg._run(str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-w", "-l", str(pg.root / "log"), "-o",
                f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.root} -c shared_buffers=1GB "
                "-c max_wal_size=4GB -c max_connections=200", "start")
        pg._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "portal", "portal")
        return f"postgresql://portal@127.0.0.1:{pg.port}/portal"

    def stop(self) -> None:
        """Stop and remove."""
        self.inner.stop()


# -- seeding ------------------------------------------------------------------------------------------------


def _id_at(moment: float) -> str:
    """A version 7 UUID for a row written at ``moment`` (epoch seconds), as the app's writer makes them."""
    return str(uuid7(nanoseconds=int(moment * 1e9)))


def generate_days(org_ids: list[str], events: int, now: datetime, seed: int = 7):
    """Per day (oldest first): the day's raw rows in time order across all organizations, and its rollups."""
    rng = random.Random(seed)
    today = now.date()
    per_day, extra = divmod(events, DAYS)
    counter = 0
    for index in range(DAYS):
        day = today - timedelta(days=DAYS - 1 - index)
        count = per_day + (1 if index < extra else 0)
        limit = 86400 if day != today else max(1, int((now - datetime.combine(day, datetime.min.time(), UTC))
                                                         .total_seconds()) - 120)
        picks = sorted((rng.randrange(limit), rng.randrange(len(org_ids)), rng.randrange(3), rng.randint(1, 50))
                       for _ in range(count))
        rows = []
        hourly: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0.0, 0])
        daily: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        stamp = day.isoformat()
        midnight = datetime.combine(day, datetime.min.time(), UTC).timestamp()
        for second, org, metric, quantity in picks:
            counter += 1
            hour, rest = divmod(second, 3600)
            at = f"{stamp} {hour:02d}:{rest // 60:02d}:{rest % 60:02d}+00:00"
            org_id, name = org_ids[org], METRICS[metric]
            rows.append((_id_at(midnight + second), org_id, name, float(quantity), at, f"seed-{counter}"))
            bucket = hourly[(org_id, name, hour)]
            bucket[0] += quantity
            bucket[1] += 1
            bucket = daily[(org_id, name)]
            bucket[0] += quantity
            bucket[1] += 1
        yield day, rows, hourly, daily


def seed_sqlite(path: str, tenant_id: str, org_ids: list[str], events: int, now: datetime) -> float:
    """Write raw events and rollups with the sqlite3 module (same text formats as the app); returns seconds."""
    import sqlite3

    import piccolo.engine.sqlite  # noqa: F401 - registers the adapters the app writes with

    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -2000000")
    received = str(now.replace(microsecond=0))
    written = 0
    monthly: dict[tuple[str, str, date], list[float]] = defaultdict(lambda: [0.0, 0])
    for day, rows, hourly, daily in generate_days(org_ids, events, now):
        for (o, m), (q, n) in daily.items():
            monthly[(o, m, day.replace(day=1))][0] += q
            monthly[(o, m, day.replace(day=1))][1] += n
        midnight = datetime.combine(day, datetime.min.time(), UTC).timestamp()
        with db:
            db.executemany(
                "INSERT INTO usage_event (id, tenant, organization, metric, quantity, occurred_at, idempotency_key, "
                "dimensions, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?)",
                [(r[0], tenant_id, r[1], r[2], r[3], r[4], r[5], received) for r in rows])
            db.executemany(
                "INSERT INTO usage_hourly (id, tenant, organization, metric, hour, quantity, events, reported) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(_id_at(midnight + h * 3600), tenant_id, o, m, f"{day.isoformat()} {h:02d}:00:00+00:00", q, n, q)
                 for (o, m, h), (q, n) in hourly.items()])
            db.executemany(
                "INSERT INTO usage_daily (id, tenant, organization, metric, day, quantity, events) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(_id_at(midnight), tenant_id, o, m, day.isoformat(), q, n) for (o, m), (q, n) in daily.items()])
        written += len(rows)
        if day.day == 1:
            print(f"  seeded {written:,} events (through {day})", flush=True)
    with db:
        db.executemany(
            "INSERT INTO usage_monthly (id, tenant, organization, metric, month, quantity, events) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(_id_at(time.time()), tenant_id, o, m, month.isoformat(), q, n)
             for (o, m, month), (q, n) in monthly.items()])
    db.execute("ANALYZE")
    db.close()
    print()
    return time.perf_counter() - started


async def seed_postgres(tenant_id: uuid.UUID, org_ids: list[uuid.UUID], events: int, now: datetime) -> float:
    """Write raw events and rollups with COPY; returns seconds."""
    from core.db import engine

    started = time.perf_counter()
    names = [str(o) for o in org_ids]
    by_name = dict(zip(names, org_ids, strict=True))
    written = 0
    pool = engine().pool
    monthly: dict[tuple[str, str, date], list[float]] = defaultdict(lambda: [0.0, 0])
    async with pool.acquire() as connection:
        for day, rows, hourly, daily in generate_days(names, events, now):
            for (o, m), (q, n) in daily.items():
                monthly[(o, m, day.replace(day=1))][0] += q
                monthly[(o, m, day.replace(day=1))][1] += n
            midnight = datetime.combine(day, datetime.min.time(), UTC)
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "usage_event", columns=["id", "tenant", "organization", "metric", "quantity", "occurred_at",
                                            "idempotency_key", "dimensions", "received_at"],
                    records=[(uuid.UUID(r[0]), tenant_id, by_name[r[1]], r[2], r[3],
                              datetime.fromisoformat(r[4]), r[5], "{}", now) for r in rows])
                await connection.copy_records_to_table(
                    "usage_hourly", columns=["id", "tenant", "organization", "metric", "hour", "quantity", "events",
                                             "reported"],
                    records=[(uuid.UUID(_id_at(midnight.timestamp() + h * 3600)), tenant_id, by_name[o], m,
                              midnight + timedelta(hours=h), q, n, q)
                             for (o, m, h), (q, n) in hourly.items()])
                await connection.copy_records_to_table(
                    "usage_daily", columns=["id", "tenant", "organization", "metric", "day", "quantity", "events"],
                    records=[(uuid.UUID(_id_at(midnight.timestamp())), tenant_id, by_name[o], m, day, q, n)
                             for (o, m), (q, n) in daily.items()])
            written += len(rows)
            if day.day == 1:
                print(f"  seeded {written:,} events (through {day})", flush=True)
        await connection.copy_records_to_table(
            "usage_monthly", columns=["id", "tenant", "organization", "metric", "month", "quantity", "events"],
            records=[(uuid.UUID(_id_at(time.time())), tenant_id, by_name[o], m, month, q, n)
                     for (o, m, month), (q, n) in monthly.items()])
        await connection.execute("VACUUM ANALYZE usage_monthly")
        await connection.execute("VACUUM ANALYZE usage_event")
        await connection.execute("VACUUM ANALYZE usage_hourly")
        await connection.execute("VACUUM ANALYZE usage_daily")
    print()
    return time.perf_counter() - started


# -- the read path ------------------------------------------------------------------------------------------


async def raw_series(org_id: uuid.UUID, period_start: date, today: date, now: datetime) -> Any:
    """The page's numbers straight from usage_event, in the same one-query shape as the rollup read."""
    from core.db import is_sqlite
    from plugins.usage.periods import add_months, utc_hour
    from plugins.usage.queries import PageSeries
    from plugins.usage.tables import UsageEvent

    first_month = datetime.combine(add_months(period_start, -11), datetime.min.time(), UTC)
    recent = datetime.combine(today - timedelta(days=29), datetime.min.time(), UTC)
    end = datetime.combine(add_months(period_start, 1), datetime.min.time(), UTC)
    since = utc_hour(now) - timedelta(hours=23)
    if is_sqlite():
        bucket = "CASE WHEN occurred_at >= {} THEN substr(occurred_at, 1, 10) ELSE substr(occurred_at, 1, 7) END"
    else:
        bucket = ("CASE WHEN occurred_at >= {} THEN to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
                  "ELSE to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') END")
    rows = await UsageEvent.raw(
        f"SELECT metric, {bucket} AS bucket, SUM(quantity) AS quantity FROM usage_event "
        "WHERE organization = {} AND occurred_at >= {} AND occurred_at < {} GROUP BY metric, 2 "
        "UNION ALL SELECT metric, NULL AS bucket, SUM(quantity) AS quantity FROM usage_event "
        "WHERE organization = {} AND occurred_at >= {} AND occurred_at < {} GROUP BY metric",
        recent, org_id, first_month, end, org_id, since, since + timedelta(hours=24))
    series = PageSeries()
    period_month = period_start.strftime("%Y-%m")
    for row in rows:
        metric, key, quantity = row["metric"], row["bucket"], float(row["quantity"] or 0)
        if key is None:
            series.last_24h[metric] = quantity
            continue
        if len(key) > 7:
            series.daily.setdefault(metric, {})[date.fromisoformat(key)] = quantity
        months = series.monthly.setdefault(metric, {})
        months[key[:7]] = months.get(key[:7], 0.0) + quantity
    for metric, months in series.monthly.items():
        series.totals[metric] = months.get(period_month, 0.0)
    return series


def same(a: Any, b: Any) -> bool:
    """Equal up to float rounding."""
    def flat(s: Any) -> dict[Any, float]:
        out = {("t", k): v for k, v in s.totals.items()} | {("h", k): v for k, v in s.last_24h.items()}
        out |= {("d", m, d): v for m, days in s.daily.items() for d, v in days.items()}
        return out | {("m", m, k): v for m, months in s.monthly.items() for k, v in months.items()}

    x, y = flat(a), flat(b)
    return set(x) == set(y) and all(abs(x[k] - y[k]) <= 1e-6 * max(1.0, abs(x[k])) for k in x)


async def measure_reads(runtime: Any, tenant: Any, orgs: list[Any], now: datetime) -> dict[str, list[float]]:
    """Rollup and raw reads of each sampled organization, in two orders, and the whole dashboard.

    "blocks": three rounds, each reading every organization's page data from the rollups,
    then the same numbers from raw events (each kind in a loop of its own, as a benchmark
    runner would). "alternating": per organization, rollups then raw, three times: every
    rollup read follows a raw scan that just pushed its pages out of the CPU caches.
    """
    from core.context import CurrentOrganization, system_context
    from plugins.usage.dashboard import build_dashboard
    from plugins.usage.periods import current_period
    from plugins.usage.queries import page_series

    period = current_period(now, __import__("zoneinfo").ZoneInfo("UTC"))
    today = now.date()
    times: dict[str, list[float]] = defaultdict(list)

    async def rollups(org: dict) -> Any:
        t0 = time.perf_counter()
        series = await page_series(org["id"], list(METRICS), period.start, period.end, today, now)
        return series, time.perf_counter() - t0

    async def raw(org: dict) -> Any:
        t0 = time.perf_counter()
        series = await raw_series(org["id"], period.start, today, now)
        return series, time.perf_counter() - t0

    for org in orgs:  # warm both, and check they agree
        assert same((await rollups(org))[0], (await raw(org))[0]), f"rollups and raw disagree for {org['slug']}"
    for _ in range(3):
        for org in orgs:
            times["rollups in blocks"].append((await rollups(org))[1])
        for org in orgs:
            times["raw in blocks"].append((await raw(org))[1])
    for org in orgs:
        for _ in range(3):
            times["rollups alternating"].append((await rollups(org))[1])
            times["raw alternating"].append((await raw(org))[1])
        ctx = system_context(runtime, tenant, organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
        t0 = time.perf_counter()
        await build_dashboard(ctx, ctx.organization, now=now)
        times["dashboard"].append(time.perf_counter() - t0)
    return times


# -- ingest over HTTP ---------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
local counter = 0
local metrics = {"api_calls", "transfer_gb", "compute_minutes"}
local run, batch, keys = "", 1, {}
function init(args)
  run = args[1]; batch = tonumber(args[2])
  for i = 3, #args do keys[#keys + 1] = args[i] end
end
request = function()
  counter = counter + 1
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local body
  if batch == 1 then
    body = string.format('{"metric":"%s","quantity":1,"timestamp":"%s","idempotency_key":"%s-%d"}',
                         metrics[counter % 3 + 1], ts, run, counter)
  else
    local parts = {}
    for j = 1, batch do
      parts[j] = string.format('{"metric":"%s","quantity":1,"timestamp":"%s","idempotency_key":"%s-%d-%d"}',
                               metrics[j % 3 + 1], ts, run, counter, j)
    end
    body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "/api/v1/usage/events", {["Content-Type"] = "application/json",
    ["Host"] = "HOST", ["Authorization"] = "Bearer " .. keys[counter % #keys + 1]}, body)
end
""".replace("HOST", HOST)


def run_wrk(port: int, script: Path, keys: list[str], batch: int, connections: int, duration: int) -> dict:
    """One wrk run; requests/s, events/s, latency p50/p99 (ms) and the run id (for counting rows)."""
    run = uuid.uuid4().hex[:8]
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
               f"http://127.0.0.1:{port}/api/v1/usage/events", "--", run, str(batch), *keys]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors:\n{output}")

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"run": run, "requests": requests, "req_s": rate, "events_s": rate * batch,
            "p50": latency("50"), "p99": latency("99")}


async def count_run(run: str) -> int:
    """Rows a wrk run wrote (its idempotency keys start with the run id)."""
    from plugins.usage.tables import UsageEvent

    return await UsageEvent.count().where(UsageEvent.idempotency_key.like(f"{run}-%"))


# -- main ---------------------------------------------------------------------------------------------------


async def prepare(args: argparse.Namespace) -> tuple[Any, Any, list[dict], list[str]]:
    """Migrate, apply the tenant (orgs), create 8 API keys with usage.write; returns app, tenant, orgs, keys."""
    import msgspec

    from bench.usage_app import asgi_app
    from core.context import CurrentOrganization, system_context
    from core.db import connect, use_database
    from core.manifests import TenantManifest, apply_manifest
    from core.migrate import migrate_all
    from core.security import Passwords
    from core.settings import load_settings
    from core.tables import Organization
    from plugins.apikeys import service

    settings = load_settings(load_entry_points=False)
    use_database(settings.database_url)
    await connect()
    await migrate_all()
    manifest = msgspec.convert({
        "slug": "bench", "name": "Bench", "domains": [HOST], "plugins": ["usage", "api-keys", "bench-limits"],
        "settings": {"usage": {"timezone": "UTC", "backfill_days": 35, "metrics": {m: {} for m in METRICS}},
                     "api-keys": {"rate_limit_per_minute": 0}},
        "organizations": [{"slug": f"org-{i:04d}", "name": f"Org {i}", "members": []} for i in range(args.orgs)],
    }, TenantManifest)
    await apply_manifest(manifest, ROOT, Passwords("test"))
    app = asgi_app()
    runtime = app.state.portal
    await runtime.directory.refresh()
    tenant = await runtime.directory.by_slug("bench")
    orgs = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.tenant == tenant.id).order_by(Organization.slug)
    keys = []
    for org in orgs[:8]:
        ctx = system_context(runtime, tenant, organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
        _row, plaintext = await service.create_key(ctx, service.KeyDraft(name="Bench", scopes=["usage.write"]))
        keys.append(plaintext)
    return app, tenant, orgs, keys


def print_reads(reads: dict[str, list[float]], samples: int, per_org: int) -> None:
    """The read results in both orders, with the ratios the issue asks for."""
    print(f"\nusage page data, {samples} organizations x 3 reads, ~{per_org:,} events each:")
    for order in ("in blocks", "alternating"):
        fast, slow = reads[f"rollups {order}"], reads[f"raw {order}"]
        print(f"  {order}: rollups (page_series) p50 {pct(fast, 50):.2f} ms, p95 {pct(fast, 95):.2f} ms "
              f"(target p95 <= 5 ms); raw events (same query) p50 {pct(slow, 50):.2f} ms, "
              f"p95 {pct(slow, 95):.2f} ms; raw / rollups {pct(slow, 50) / pct(fast, 50):.0f}x at p50, "
              f"{pct(slow, 95) / pct(fast, 95):.0f}x at p95 (target >= 100x)")
    print(f"  whole build_dashboard (all plugins' metrics hooks): p50 {pct(reads['dashboard'], 50):.2f} ms, "
          f"p95 {pct(reads['dashboard'], 95):.2f} ms")


async def main(args: argparse.Namespace) -> None:
    """Seed, read, ingest, print."""
    pg = None
    var = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    kept = Path(args.keep).resolve() if args.keep else None
    reuse = (kept is not None and kept.exists()) or bool(args.database_url)
    env = {"PORTAL_ENV": "development", "PORTAL_VAR_DIR": str(var), "PORTAL_OUTBOX_WORKER": "false",
           "PORTAL_MAIL_BACKEND": "dev", "PORTAL_PASSWORD_HASH_PROFILE": "test", "PYTHONPATH": str(ROOT),
           "PORTAL_SECRET_KEY": "bench-secret-" + "x" * 32}
    os.environ.update(env)
    if args.database_url:
        os.environ["PORTAL_DATABASE_URL"] = args.database_url
    elif args.db == "postgres":
        pg = DurablePostgres()
        os.environ["PORTAL_DATABASE_URL"] = pg.start()
    else:
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{kept or var / 'bench.db'}"
    server = None
    try:
        from core.db import disconnect

        app, tenant, orgs, keys = await prepare(args)
        now = datetime.now(UTC)
        print(f"database: {args.db}; {args.events:,} events across {len(orgs):,} organizations, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        if reuse:
            seconds = 0.0
            print(f"  reusing the seeded database {kept or args.database_url}")
        elif args.db == "sqlite":
            await disconnect()
            seconds = seed_sqlite(str(kept or var / "bench.db"), str(tenant.id), [str(o["id"]) for o in orgs],
                                  args.events, now)
            from core.db import connect
            await connect()
        else:
            seconds = await seed_postgres(tenant.id, [o["id"] for o in orgs], args.events, now)
        print(f"  seeding took {seconds:,.0f} s")
        sample = random.Random(3).sample(orgs, min(args.samples, len(orgs)))
        from core.app import freeze_long_lived_objects

        freeze_long_lived_objects()  # as a served app does after start-up (``core.app.served``)
        reads = await measure_reads(app.state.portal, tenant, sample, now)
        await disconnect()

        if args.skip_ingest:
            print_reads(reads, len(sample), args.events // len(orgs))
            return
        script = var / "ingest.lua"
        script.write_text(WRK_SCRIPT)
        port = free_port()
        server = start_granian("bench.usage_app:asgi_app", port, {**os.environ}, args.workers)
        run_wrk(port, script, keys, 1, 8, 3)  # warm-up: key cache, connections
        ingest = {
            "batches of 100": run_wrk(port, script, keys, 100, args.batch_connections, args.duration),
            "single events": run_wrk(port, script, keys, 1, args.single_connections, args.duration),
        }
        from core.db import connect
        await connect()
        for result in ingest.values():
            result["rows"] = await count_run(result["run"])
        await disconnect()

        print_reads(reads, len(sample), args.events // len(orgs))
        print(f"ingest over HTTP: granian {args.workers} worker(s), wrk -t1, {args.duration} s per run")
        for name, r in ingest.items():
            connections = args.batch_connections if name.startswith("batches") else args.single_connections
            print(f"  {name:<15} c={connections:<3} {r['events_s']:9,.0f} events/s {r['req_s']:8,.0f} req/s  "
                  f"p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  rows written {r['rows']:,} "
                  f"(requests {r['requests']:,})")
    finally:
        if server is not None:
            stop(server)
        if pg is not None:
            pg.stop()
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=1, help="granian workers")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--single-connections", type=int, default=32)
    parser.add_argument("--database-url", help="an already seeded database to reuse (no seeding)")
    parser.add_argument("--skip-ingest", action="store_true", help="only the reads")
    parser.add_argument("--keep", metavar="FILE", help="SQLite only: seed into FILE and keep it; reuse it if it "
                        "exists (saves the seeding between runs while tuning)")
    try:  # the served app runs on uvloop (granian and uvicorn pick it when installed): read under it too
        import uvloop
    except ImportError:
        asyncio.run(main(parser.parse_args()))
    else:
        uvloop.run(main(parser.parse_args()))
