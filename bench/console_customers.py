"""``/admin/customers`` with many organizations: the cost of plan, revenue and MRR totals per page view.

Seeds one tenant with ``ORGS`` organizations (3 members each) in a throwaway database
(SQLite in a temp dir, or ``PORTAL_DATABASE_URL`` when it is PostgreSQL) and a stand-in
billing plugin whose ``portal_billing_summaries`` answers every organization with one query,
as the real one does (per 500). Sends requests through the whole ASGI stack in-process
(httpx, signed in as the tenant admin) and prints medians against the baseline
``/admin/sections`` (a console page with no per-organization work), measured in the same run:
the customers page without a billing plugin, and with one (totals over every organization).

    .venv/bin/python bench/console_customers.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ORGS = (100, 1_000)
ROUNDS = 30


def billing_plugin() -> Any:
    """A stand-in billing plugin: one query for all organizations, like the real one's local-copy read."""
    from core import hookimpl
    from core.contracts import BillingSummary, PluginInfo
    from core.tables import Organization

    class Plugin:
        @hookimpl
        def portal_plugin(self) -> Any:
            return PluginInfo("benchbilling", "Bench billing", "1.0", "")

        @hookimpl
        async def portal_billing_summaries(self, ctx: Any, orgs: list[Any]) -> Any:
            rows = await Organization.select(Organization.id).where(Organization.id.is_in([o.id for o in orgs]))
            pro = BillingSummary("pro", "Pro", "active", "EUR", Decimal(49), "month", Decimal(49))
            return {row["id"]: pro for row in rows}

    return Plugin()


async def main() -> None:
    """Seed, measure, print ratios."""
    if not os.environ.get("PORTAL_DATABASE_URL", "").startswith("postgres"):
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='customers-bench-')}/bench.db"
    os.environ.setdefault("PORTAL_SECRET_KEY", "bench-secret-key-" + "x" * 32)
    os.environ["PORTAL_OUTBOX_WORKER"] = "false"
    import httpx

    from core.app import create_app
    from core.db import connect, use_database, utcnow
    from core.migrate import migrate_all
    from core.security import Passwords
    from core.settings import load_settings
    from core.tables import Membership, Organization, Tenant, TenantDomain, User
    from core.testing import form_post, running

    settings = load_settings(load_entry_points=False, builtin_plugins=("core.builtin",),
                             password_hash_profile="test")
    use_database(settings.database_url)
    await connect()
    await migrate_all()
    passwords = Passwords("test")
    results: list[tuple[int, float, float, float]] = []
    for count in ORGS:
        now, run = utcnow(), uuid.uuid4().hex[:6]
        tenant_id, admin_id = uuid.uuid4(), uuid.uuid4()
        host = f"c{run}.bench.test"
        await Tenant.insert(Tenant(id=tenant_id, slug=f"c{run}", name="Bench", plugins=["benchbilling"],
                                   created_at=now, updated_at=now))
        await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant_id, hostname=host, is_primary=True,
                                               verified=True, created_at=now))
        users = [User(id=admin_id, tenant=tenant_id, email=f"admin@{host}", is_tenant_admin=True,
                      password_hash=passwords.hash("bench-password-123"), created_at=now)]
        users += [User(id=uuid.uuid4(), tenant=tenant_id, email=f"u{i}@{host}", created_at=now) for i in range(3)]
        await User.insert(*users)
        orgs = [Organization(id=uuid.uuid4(), tenant=tenant_id, slug=f"org-{i}", name=f"Org {i}", created_at=now)
                for i in range(count)]
        for start in range(0, count, 500):
            await Organization.insert(*orgs[start:start + 500])
        members = [Membership(id=uuid.uuid4(), tenant=tenant_id, organization=o.id, user=u.id, role="member",
                              created_at=now) for o in orgs for u in users[1:]]
        for start in range(0, len(members), 500):
            await Membership.insert(*members[start:start + 500])
        plain = 0.0
        for with_billing in (False, True):
            extra = [billing_plugin()] if with_billing else []
            app = create_app(settings, extra_plugins=extra)
            async with running(app):
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
                async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
                    signed_in = await form_post(client, "/login", {"email": f"admin@{host}",
                                                                   "password": "bench-password-123"})
                    assert signed_in.status_code == 302, signed_in.text[:300]

                    async def median_ms(path: str) -> float:
                        samples = []
                        for i in range(ROUNDS + 3):
                            start = time.perf_counter()
                            response = await client.get(path)
                            if i >= 3:
                                samples.append((time.perf_counter() - start) * 1000)
                            assert response.status_code == 200, (path, response.status_code)
                        return statistics.median(samples)

                    baseline = await median_ms("/admin/sections")
                    page = await median_ms("/admin/customers")
            if with_billing:
                results.append((count, baseline, plain, page))
            else:
                plain = page
    engine = settings.database_url.split(":")[0]
    print(f"/admin/customers on {engine} (median of {ROUNDS}; 25 rows a page, totals over every organization)")
    for count, baseline, plain, billed in results:
        print(f"  {count:>5} orgs  baseline /admin/sections {baseline:7.2f} ms 1.00 | customers, no billing "
              f"{plain:7.2f} ms {plain / baseline:5.2f}x | with billing summaries {billed:7.2f} ms "
              f"{billed / baseline:5.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
