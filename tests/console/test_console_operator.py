"""The platform operator's tenant lifecycle: create (with a first tenant admin), suspend, resume, list domains."""

from __future__ import annotations

import uuid

import pytest

from core.console.operator import OperatorError, create_tenant, domain_rows, set_status
from core.tables import Tenant, User
from core.testing import client_for, login


async def test_create_suspend_resume(portal_app_factory, recorder):
    app = await portal_app_factory(recorder)
    runtime = app.state.portal
    slug = "op" + uuid.uuid4().hex[:8]
    host = f"{slug}.platform.test"
    tenant_id, password = await create_tenant(runtime, slug=slug, name="Operator Made", domains=[host.upper()],
                                              admin_email=f"Boss@{slug}.example")
    admin = await User.select().where(User.tenant == tenant_id).first()
    assert admin["email"] == f"boss@{slug}.example" and admin["is_tenant_admin"] is True
    async with client_for(app, host) as client:
        assert (await login(client, f"boss@{slug}.example", password=password)).status_code == 302
        console = await client.get("/admin/branding")
        assert console.status_code == 200 and "Operator Made" in console.text
    async with client_for(app, "127.0.0.1") as proxy:
        assert (await proxy.get("/_tls/ask", params={"domain": host})).status_code == 200

    await Tenant.update({Tenant.plugins: ["recorder"]}).where(Tenant.id == tenant_id)
    assert await set_status(runtime, slug, "suspended") is True
    assert await set_status(runtime, slug, "suspended") is False
    async with client_for(app, host) as client:
        response = await client.get("/login")
        assert response.status_code == 404 and "Operator Made" not in response.text
    async with client_for(app, "127.0.0.1") as proxy:
        assert (await proxy.get("/_tls/ask", params={"domain": host})).status_code == 404
    [row] = await domain_rows(slug)
    assert row["state"] == "tenant suspended" and row["tls"] == "no" and row["is_primary"] is True

    assert await set_status(runtime, slug, "active") is True
    async with client_for(app, host) as client:
        assert (await client.get("/login")).status_code == 200
    suspended, resumed = [e for e in recorder.events if e.type.startswith("operator.")]
    assert suspended.type == "operator.tenant.suspended" and suspended.after == {"status": "suspended"}
    assert resumed.type == "operator.tenant.resumed" and resumed.actor.display == "Platform operator"
    assert resumed.tenant_id == tenant_id
    assert (await domain_rows(slug))[0]["state"] == "live"


async def test_create_refuses_bad_input(portal_app, make_tenant):
    runtime = portal_app.state.portal
    existing = await make_tenant()
    with pytest.raises(OperatorError, match="slug"):
        await create_tenant(runtime, slug="Bad Slug", name="x", domains=["a.test"])
    with pytest.raises(OperatorError, match="already exists"):
        await create_tenant(runtime, slug=existing.slug, name="x", domains=["new.test"])
    with pytest.raises(OperatorError, match="already belongs"):
        await create_tenant(runtime, slug="op" + uuid.uuid4().hex[:8], name="x", domains=[existing.host])
    with pytest.raises(OperatorError, match="theme"):
        await create_tenant(runtime, slug="op" + uuid.uuid4().hex[:8], name="x", domains=["z.test"], theme="nope")
    with pytest.raises(OperatorError, match="no tenant"):
        await set_status(runtime, "does-not-exist", "suspended")
