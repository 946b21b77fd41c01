"""Members list with 10,000 members: data time of a page vs a baseline measured in the same run.

Seeds one organization with 10,000 members in a throwaway database (SQLite in a temp
dir, or the database of ``PORTAL_DATABASE_URL`` when it is set to PostgreSQL), then
times ``plugins.team.queries.member_page`` (what the team page reads: the page's rows,
their sign-in methods and the total) for the first page, a page deep in the list
(keyset cursor), the same deep page backwards, and a search. The baseline is the
cheapest possible read of 25 members of the organization (one indexed query, no join,
no count); the naive deep page is OFFSET 9,000 — what keyset pagination avoids.

    .venv/bin/python bench/team_members.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
MEMBERS = 10_000
ROUNDS = 30


async def timed(label: str, fn: Callable[[], Awaitable[Any]]) -> float:
    """Median milliseconds of ``ROUNDS`` runs after one warm-up."""
    await fn()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def main() -> None:
    """Seed, measure, print."""
    if not os.environ.get("PORTAL_DATABASE_URL", "").startswith("postgres"):
        os.environ["PORTAL_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='team-bench-')}/bench.db"
    os.environ.setdefault("PORTAL_SECRET_KEY", "bench-secret-key-" + "x" * 32)
    from core.db import connect, use_database, utcnow
    from core.migrate import migrate_all
    from core.settings import load_settings
    from core.tables import Membership, Organization, Tenant, User, UserSession
    from plugins.team.queries import encode_cursor, member_page

    settings = load_settings(load_entry_points=False)
    use_database(settings.database_url)
    await connect()
    await migrate_all()
    now = utcnow()
    tenant_id, org_id = uuid.uuid4(), uuid.uuid4()
    await Tenant.insert(Tenant(id=tenant_id, slug=f"bench{tenant_id.hex[:6]}", name="Bench", created_at=now,
                               updated_at=now))
    await Organization.insert(Organization(id=org_id, tenant=tenant_id, slug="big", name="Big", created_at=now))
    seed_start = time.perf_counter()
    emails = []
    for start in range(0, MEMBERS, 1000):
        users = [User(id=uuid.uuid4(), tenant=tenant_id, email=f"member{i:05d}@big.example", name=f"Member {i:05d}",
                      created_at=now) for i in range(start, start + 1000)]
        emails.extend(u.email for u in users)
        await User.insert(*users)
        await Membership.insert(*[Membership(id=uuid.uuid4(), tenant=tenant_id, organization=org_id, user=u.id,
                                             role="member", created_at=now, last_active_at=now) for u in users])
        await UserSession.insert(*[UserSession(id=uuid.uuid4(), key_hash=uuid.uuid4().hex, tenant=tenant_id,
                                               user=u.id, auth_method="password" if i % 3 else "oidc",
                                               created_at=now, last_seen_at=now, expires_at=now)
                                   for i, u in enumerate(users)])
    engine = settings.database_url.split(":")[0]
    print(f"seeded {MEMBERS} members in {time.perf_counter() - seed_start:.1f}s on {engine}")
    from core.db import engine as current_engine

    await current_engine().run_ddl("ANALYZE")

    deep = encode_cursor(emails[9000])

    async def baseline() -> Any:
        return await Membership.select(Membership.id, Membership.role).where(
            Membership.tenant == tenant_id, Membership.organization == org_id).limit(25)

    async def naive_offset() -> Any:
        return await Membership.select(
            Membership.id, Membership.role, Membership.user.email, Membership.user.name,
        ).where(Membership.organization == org_id).order_by(Membership.user.email).offset(9000).limit(25)

    cases = {
        "baseline: 25 members, one indexed query": baseline,
        "team page, first page": lambda: member_page(tenant_id, org_id),
        "team page, page 361 (keyset)": lambda: member_page(tenant_id, org_id, after=deep),
        "team page, page 360 backwards": lambda: member_page(tenant_id, org_id, before=deep),
        "team page, search 'member0999'": lambda: member_page(tenant_id, org_id, query="member0999"),
        "naive deep page (OFFSET 9000, no count)": naive_offset,
    }
    results = {label: await timed(label, fn) for label, fn in cases.items()}
    base = results["baseline: 25 members, one indexed query"]
    print(f"{'case':<44}{'median ms':>11}{'x baseline':>12}")
    for label, ms in results.items():
        print(f"{label:<44}{ms:>11.2f}{ms / base:>12.1f}")
    first, deep_ms = results["team page, first page"], results["team page, page 361 (keyset)"]
    print(f"deep page / first page: {deep_ms / first:.2f} (keyset: page depth should not matter)")


if __name__ == "__main__":
    asyncio.run(main())
