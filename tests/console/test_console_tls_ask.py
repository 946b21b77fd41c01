"""``/_tls/ask``: 200 only for a verified domain of an active tenant, on any Host; 404 otherwise; rate-limited."""

from __future__ import annotations

import uuid

from core.db import utcnow
from core.tables import Tenant, TenantDomain
from core.testing import client_for


async def test_tls_ask_answers(portal_app_factory, make_tenant):
    app = await portal_app_factory()
    tenant = await make_tenant()
    suspended = await make_tenant()
    pending = f"pending.{tenant.slug}.test"
    await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant.id, hostname=pending, is_primary=False,
                                           verified=False, created_at=utcnow()))
    await Tenant.update({Tenant.status: "suspended"}).where(Tenant.id == suspended.id)
    app.state.portal.directory.invalidate()
    # The proxy asks from its own address, with a Host that names no tenant.
    async with client_for(app, "127.0.0.1:8000") as proxy:
        async def ask(domain):
            return (await proxy.get("/_tls/ask", params={"domain": domain})).status_code

        assert await ask(tenant.host) == 200
        assert await ask(tenant.host.upper() + ".") == 200
        assert await ask(pending) == 404
        assert await ask(suspended.host) == 404
        assert await ask("unknown.example.test") == 404
        assert await ask("") == 404
        assert await ask("not a host!") == 404
        assert (await proxy.get("/_tls/ask")).status_code == 404
    # Also on a tenant's own host.
    async with client_for(app, tenant.host) as client:
        assert (await client.get("/_tls/ask", params={"domain": tenant.host})).status_code == 200


async def test_tls_ask_is_rate_limited(portal_app_factory, make_tenant):
    app = await portal_app_factory(extra={"tls_ask_limit": "3"})
    tenant = await make_tenant()
    await app.state.portal.directory.refresh()
    async with client_for(app, "127.0.0.1", client_ip="10.9.9.9") as proxy:
        codes = [(await proxy.get("/_tls/ask", params={"domain": tenant.host})).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = await proxy.get("/_tls/ask", params={"domain": tenant.host})
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
    async with client_for(app, "127.0.0.1", client_ip="10.9.9.10") as other:
        assert (await other.get("/_tls/ask", params={"domain": tenant.host})).status_code == 200


async def test_tls_ask_says_yes_to_the_platform_host(portal_app_factory):
    app = await portal_app_factory(extra={"platform_host": "Ops.Platform.test"})
    async with client_for(app, "127.0.0.1:8000") as proxy:
        assert (await proxy.get("/_tls/ask", params={"domain": "ops.platform.test"})).status_code == 200
        assert (await proxy.get("/_tls/ask", params={"domain": "x.ops.platform.test"})).status_code == 404
    unset = await portal_app_factory()
    async with client_for(unset, "127.0.0.1:8000") as proxy:
        assert (await proxy.get("/_tls/ask", params={"domain": "ops.platform.test"})).status_code == 404
