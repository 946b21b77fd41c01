"""With ``PORTAL_REDIS_URL``, a tenant change made in one process reaches the others at once."""

from __future__ import annotations

import asyncio
import uuid

from core.db import utcnow
from core.tables import TenantDomain
from core.testing import client_for, free_port, refresh_tenants


async def test_invalidation_reaches_the_other_process(redis_url, portal_app_factory, make_tenant):
    first = await portal_app_factory(redis_url=redis_url, tenant_cache_ttl=3600)
    second = await portal_app_factory(redis_url=redis_url, tenant_cache_ttl=3600)
    tenant = await make_tenant()
    new_host = f"moved-{tenant.slug}.example.test"
    await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant.id, hostname=new_host, is_primary=False,
                                           verified=True, created_at=utcnow()))
    async with client_for(second, new_host) as client:
        assert (await client.get("/login")).status_code == 404  # the second process still has its snapshot
        first.state.portal.directory.invalidate()  # what the console does after changing a domain
        for _ in range(100):  # delivery is asynchronous; wait for it rather than for a fixed time
            if (await client.get("/login")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert (await client.get("/login")).status_code == 200


async def test_failed_logins_count_across_processes(redis_url, portal_app_factory, make_tenant):
    """Five wrong passwords lock the account whichever process each attempt reached."""
    from core.testing import login

    first = await portal_app_factory(redis_url=redis_url)
    second = await portal_app_factory(redis_url=redis_url)
    tenant = await make_tenant()
    for attempt in range(5):
        async with client_for(first if attempt % 2 else second, tenant.host) as client:
            wrong = await login(client, tenant.email("member"), password="not the password")
            assert wrong.status_code == 400
    async with client_for(first, tenant.host) as client:
        locked = await login(client, tenant.email("member"))
        assert locked.status_code == 429 and "Too many" in locked.text


async def test_throttles_fall_back_to_the_process_when_redis_is_down():
    """A Redis outage after start-up neither locks everyone out nor turns throttling off."""
    from core.ratelimit import Throttles

    throttle = Throttles(f"redis://127.0.0.1:{free_port()}/0").get("login_by_account", 2, 60)
    assert await throttle.retry_after("someone") == 0
    await throttle.hit("someone")
    assert await throttle.retry_after("someone") == 0
    await throttle.hit("someone")
    assert 0 < await throttle.retry_after("someone") <= 60
    assert await throttle.retry_after("someone else") == 0
    await throttle.reset("someone")
    assert await throttle.retry_after("someone") == 0


async def test_invalid_api_keys_count_across_processes(redis_url, portal_app_factory, make_tenant):
    """A client guessing API keys gets one budget however the load balancer spreads its requests."""
    from plugins.apikeys.auth import INVALID_LIMIT
    from plugins.apikeys.keyformat import generate_key

    plugins = ("core.builtin", "plugins.apikeys")
    first = await portal_app_factory(redis_url=redis_url, builtin_plugins=plugins)
    second = await portal_app_factory(redis_url=redis_url, builtin_plugins=plugins)
    tenant = await make_tenant(plugins=["api-keys"])
    for app in (first, second):
        await refresh_tenants(app)
    answers = []
    for attempt in range(INVALID_LIMIT):
        app = (first, second)[attempt % 2]
        async with client_for(app, tenant.host, client_ip="203.0.113.50") as client:
            answers.append((await client.get("/api/v1/api-keys/me",
                                             headers={"Authorization": f"Bearer {generate_key()}"})).status_code)
    assert answers == [401] * INVALID_LIMIT  # each process saw only half of them
    for app in (first, second):
        async with client_for(app, tenant.host, client_ip="203.0.113.50") as client:
            blocked = await client.get("/api/v1/api-keys/me", headers={"Authorization": f"Bearer {generate_key()}"})
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        async with client_for(app, tenant.host, client_ip="198.51.100.20") as honest:  # another address
            assert (await honest.get("/api/v1/api-keys/me",
                                     headers={"Authorization": f"Bearer {generate_key()}"})).status_code == 401
