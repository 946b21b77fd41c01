"""Who gets into /admin: tenant admins of this tenant only."""

from __future__ import annotations

from core.testing import client_for, form_post, login


async def test_anonymous_is_sent_to_login(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("member"), password="wrong-password-x")
        response = await client.get("/admin/branding")
        assert response.status_code == 302
        assert response.headers["location"].startswith("/login?next=/admin/branding")


async def test_organization_owner_is_not_a_tenant_admin(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        assert (await login(client, tenant.email("owner"))).status_code == 302
        for path in ("/admin/branding", "/admin/domains", "/admin/sections", "/admin/plans", "/admin/customers"):
            response = await client.get(path)
            assert response.status_code == 403, path
            assert "administrators of this portal" in response.text
        token_page = "/account"
        response = await form_post(client, "/admin/branding", {"product_name": "Hijacked"}, token_from=token_page)
        assert response.status_code == 403


async def test_tenant_admin_gets_in(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    async with admin_client(portal_app, tenant) as client:
        response = await client.get("/admin")
        assert response.status_code in (301, 302, 307)
        page = await client.get("/admin/branding")
        assert page.status_code == 200
        assert "Live preview" in page.text and 'name="_csrf_token"' in page.text


async def test_one_tenants_admin_cannot_touch_another_tenant(portal_app, make_tenant, admin_client):
    tenant_a = await make_tenant(branding={"product_name": "Alpha"})
    tenant_b = await make_tenant(branding={"product_name": "Bravo"})
    async with admin_client(portal_app, tenant_a) as client:
        # A's session cookie means nothing on B's host: the console sends to B's login page.
        cookie = client.cookies.get("portal_session")
        async with client_for(portal_app, tenant_b.host) as other:
            other.cookies.set("portal_session", cookie)
            response = await other.get("/admin/branding")
            assert response.status_code == 302 and "/login" in response.headers["location"]
        # A's admin sees and changes only A.
        page = await client.get("/admin/branding")
        assert "Alpha" in page.text and "Bravo" not in page.text
        response = await form_post(client, "/admin/branding", {"product_name": "Alpha Two", "theme": "default"},
                                   token_from="/admin/branding")
        assert response.status_code == 302
    async with client_for(portal_app, tenant_b.host) as client:
        login_page = await client.get("/login")
        assert "Bravo" in login_page.text and "Alpha Two" not in login_page.text
