"""With ``PORTAL_REDIS_URL``, a tenant change made in one process reaches the others at once."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid

import pytest

from core.db import utcnow
from core.tables import TenantDomain
from core.testing import client_for, free_port


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        subprocess.run(["sleep", "0.05"])
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


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
