"""First contact: a tenant's login page renders in its brand; an unknown host gets the platform 404."""

from core.testing import client_for, login


async def test_login_page_and_overview(portal_app, make_tenant):
    tenant = await make_tenant(branding={"product_name": "Smoke Cloud"})
    async with client_for(portal_app, tenant.host) as client:
        response = await login(client, tenant.email("owner"))
        assert response.status_code == 302
        page = await client.get(response.headers["location"])
        assert page.status_code == 200
        assert "Smoke Cloud" in page.text
