"""``/_tls/ask`` with 2,000 tenants (4,000 hostnames): how cheap the proxy's question is.

Seeds the tenants in a throwaway database (SQLite in a temp dir, or the database of
``PORTAL_DATABASE_URL`` when it is PostgreSQL), starts the app (core only) and sends
requests through the whole ASGI stack in-process (httpx): ``/_tls/ask`` for a verified
domain, for a pending one and for an unknown name, against the baseline ``/healthz``
(the same stack plus one ``SELECT count(*)``), measured in the same run. Asks read only
the in-memory tenant directory, so they should cost less than the baseline.

    .venv/bin/python bench/console_tls_ask.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TENANTS = 2_000
ROUNDS = 400


async def main() -> None:
    """Seed, measure, print ratios."""
    if not os.environ.get("PORTAL_DATABASE_URL", "").startswith("postgres"):
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='tls-bench-')}/bench.db"
    os.environ.setdefault("PORTAL_SECRET_KEY", "bench-secret-key-" + "x" * 32)
    os.environ["PORTAL_OUTBOX_WORKER"] = "false"
    import httpx

    from core.app import create_app
    from core.db import connect, use_database, utcnow
    from core.migrate import migrate_all
    from core.settings import load_settings
    from core.tables import Tenant, TenantDomain
    from core.testing import running

    settings = load_settings(load_entry_points=False, builtin_plugins=("core.builtin",),
                             extra={"tls_ask_limit": str(10**9)})
    use_database(settings.database_url)
    await connect()
    await migrate_all()
    now = utcnow()
    run = uuid.uuid4().hex[:6]
    tenants, domains = [], []
    for i in range(TENANTS):
        tenant_id = uuid.uuid4()
        tenants.append(Tenant(id=tenant_id, slug=f"b{run}{i}", name=f"Bench {i}", created_at=now, updated_at=now))
        domains.append(TenantDomain(id=uuid.uuid4(), tenant=tenant_id, hostname=f"t{i}.{run}.bench.test",
                                    is_primary=True, verified=True, created_at=now))
        domains.append(TenantDomain(id=uuid.uuid4(), tenant=tenant_id, hostname=f"pending{i}.{run}.bench.test",
                                    is_primary=False, verified=False, created_at=now))
    for start in range(0, TENANTS, 500):
        await Tenant.insert(*tenants[start:start + 500])
    for start in range(0, len(domains), 500):
        await TenantDomain.insert(*domains[start:start + 500])
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            async def median_ms(path: str, params: dict[str, str] | None, expect: int) -> float:
                samples = []
                for i in range(ROUNDS + 20):
                    start = time.perf_counter()
                    response = await client.get(path, params=params)
                    if i >= 20:
                        samples.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == expect, (path, params, response.status_code)
                return statistics.median(samples)

            baseline = await median_ms("/healthz", None, 200)
            known = await median_ms("/_tls/ask", {"domain": f"t{TENANTS // 2}.{run}.bench.test"}, 200)
            pending = await median_ms("/_tls/ask", {"domain": f"pending{TENANTS // 2}.{run}.bench.test"}, 404)
            unknown = await median_ms("/_tls/ask", {"domain": f"nobody.{run}.bench.test"}, 404)
    engine = settings.database_url.split(":")[0]
    print(f"/_tls/ask with {TENANTS} tenants, {len(domains)} hostnames on {engine} (median of {ROUNDS})")
    print(f"  baseline /healthz          {baseline:7.3f} ms   1.00")
    for label, value in (("ask: verified domain", known), ("ask: pending domain", pending),
                         ("ask: unknown name", unknown)):
        print(f"  {label:<26} {value:7.3f} ms   {value / baseline:.2f} x baseline")


if __name__ == "__main__":
    asyncio.run(main())
