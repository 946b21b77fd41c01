"""Support view: a tenant admin reads one organization's pages; bannered, audited, time-limited, never writes."""

from __future__ import annotations

import time
import uuid

from core.console import support
from core.db import utcnow
from core.settings import BUILTIN_PLUGINS
from core.tables import Organization
from core.testing import client_for, csrf_token, login
from plugins.team.tables import Invitation
from tests.console.conftest import make_tenant_admin


async def _open(client, org_slug: str):
    token = await csrf_token(client, "/admin/customers")
    return await client.post(f"/admin/customers/{org_slug}/support", data={"_csrf_token": token})


async def test_support_view_reads_bannered_audited_and_refuses_writes(portal_app_factory, make_tenant, recorder):
    app = await portal_app_factory(recorder, builtin_plugins=BUILTIN_PLUGINS)
    tenant = await make_tenant(plugins=["recorder", "team", "billing", "api-keys"])
    customer = uuid.uuid4()
    await Organization.insert(Organization(id=customer, tenant=tenant.id, slug="acme-support", name="Acme Support",
                                           created_at=utcnow()))
    # The admin is the tenant's "viewer" user (a member of the test org only), promoted to tenant admin.
    await make_tenant_admin(tenant, "viewer")
    async with client_for(app, tenant.host) as client:
        assert (await login(client, tenant.email("viewer"))).status_code == 302
        assert (await client.get("/o/acme-support/")).status_code == 404  # not a member: nothing to see

        response = await _open(client, "acme-support")
        assert response.status_code == 302 and response.headers["location"] == "/o/acme-support/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "max-age=1800" in cookie
        [opened] = recorder.of("console.support_view.opened")
        assert opened.actor.display == tenant.email("viewer") and opened.organization_id == customer
        assert opened.target.display == "Acme Support" and opened.data["minutes"] == 30

        overview = await client.get("/o/acme-support/")
        assert overview.status_code == 200 and "Acme Support" in overview.text
        assert overview.text.count('data-testid="support-banner"') == 1
        assert "Support view — read only" in overview.text
        team = await client.get("/o/acme-support/team")
        assert team.status_code == 200 and "Support view — read only" in team.text
        assert 'action="/o/acme-support/team/invitations"' not in team.text  # viewer permissions: no invite form

        # Every unsafe method is refused before any handler, with or without a valid CSRF token.
        token = await csrf_token(client, "/admin/customers")
        # (team/leave and team/transfer need only team.read, which the viewer has: the refusal is not the role's.)
        for path in ("/o/acme-support/team/invitations", "/o/acme-support/team/leave",
                     "/o/acme-support/team/transfer", "/o/acme-support/api-keys"):
            refused = await client.post(path, data={"_csrf_token": token, "email": "x@evil.example", "role": "owner",
                                                    "name": "support key"})
            assert refused.status_code == 403, path
            assert "Support view is read only" in refused.text
        assert await Invitation.count().where(Invitation.organization == customer) == 0

        # Other organizations are untouched by the support view: the admin's own org still works normally.
        own = await client.get(f"/o/{tenant.org_slug}/")
        assert own.status_code == 200 and "support-banner" not in own.text

        # Leaving records it and ends access.
        left = await client.post("/admin/support/end", data={"_csrf_token": token})
        assert left.status_code == 302
        [closed] = recorder.of("console.support_view.closed")
        assert closed.organization_id == customer
        assert (await client.get("/o/acme-support/")).status_code == 404


async def test_support_view_needs_a_tenant_admin_and_expires(portal_app_factory, make_tenant, admin_client,
                                                             monkeypatch):
    app = await portal_app_factory()
    tenant = await make_tenant()
    other = await make_tenant()
    async with admin_client(app, tenant) as client:
        response = await _open(client, tenant.org_slug)
        value = client.cookies.get(support.COOKIE)
        assert response.status_code == 302 and value
        # An org of another tenant cannot be opened: the slug is looked up in this tenant only.
        assert (await _open(client, other.org_slug)).headers["location"] == "/admin/customers"

        # The same cookie in another admin's (or an owner's) session is worthless.
        async with client_for(app, tenant.host) as owner:
            assert (await login(owner, tenant.email("owner"))).status_code == 302
            owner.cookies.set(support.COOKIE, value)
            page = await owner.get(f"/o/{tenant.org_slug}/")
            assert page.status_code == 200 and "support-banner" not in page.text
            assert (await owner.post(f"/admin/customers/{tenant.org_slug}/support")).status_code == 403

        # A tampered end time fails the signature; then time runs out and access ends.
        org_id, expires, mac = value.split(".")
        client.cookies.delete(support.COOKIE)
        client.cookies.set(support.COOKIE, f"{org_id}.{int(expires) + 3600}.{mac}")
        assert "support-banner" not in (await client.get(f"/o/{tenant.org_slug}/")).text
        client.cookies.delete(support.COOKIE)
        client.cookies.set(support.COOKIE, value)
        assert "support-banner" in (await client.get(f"/o/{tenant.org_slug}/")).text
        now = time.time()
        monkeypatch.setattr(support.time, "time", lambda: now + support.SUPPORT_MINUTES * 60 + 1)
        assert "support-banner" not in (await client.get(f"/o/{tenant.org_slug}/")).text
