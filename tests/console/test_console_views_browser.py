"""In Chromium: Customers with revenue, the support view (banner, read-only refusal, leaving it) and the operator
view on the platform host (sign in, tenants, suspend). Screenshots land in test-artifacts/."""

from __future__ import annotations

import uuid

import pyotp
import pytest

from core.console.operator import create_operator
from core.db import utcnow
from core.settings import BUILTIN_PLUGINS
from core.tables import Organization
from core.testing import PASSWORD, artifact, headless_chromium, live_server, running
from tests.console.conftest import make_tenant_admin
from tests.console.test_console_customers import Summaries, _summary

pytestmark = pytest.mark.browser
PLATFORM = "ops.platform.test"


@pytest.fixture
async def served(portal_settings, portal_database):
    """Every built-in plugin plus a billing-summary stand-in, with a platform host, on a loopback port."""
    from core.app import create_app

    billing = Summaries()
    app = create_app(portal_settings.with_overrides(builtin_plugins=BUILTIN_PLUGINS,
                                                    extra={"platform_host": PLATFORM}), extra_plugins=[billing])
    async with running(app), live_server(app) as port:
        yield app, port, billing


async def test_customers_support_view_and_operator_in_the_browser(served, make_tenant):
    app, port, billing = served
    tenant = await make_tenant(plugins=["summaries", "team", "api-keys"],
                               branding={"product_name": "Views Cloud"})
    acme = uuid.uuid4()
    await Organization.insert(Organization(id=acme, tenant=tenant.id, slug="acme-views", name="Acme Views",
                                           created_at=utcnow()))
    billing.by_org.update({tenant.org_id: _summary("Pro", "active", "EUR", "49"),
                           acme: _summary("Scale", "past_due", "EUR", "199")})
    await make_tenant_admin(tenant)
    await app.state.portal.directory.refresh()
    base = f"http://{tenant.host}:{port}"

    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        await page.goto(f"{base}/login?next=/admin/customers")
        await page.fill("#email", tenant.email("admin"))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/admin/customers")
        assert "248.00" in await page.locator('[data-testid="mrr-EUR"]').inner_text()
        await page.screenshot(path=artifact("console-customers.png"), full_page=True)

        await page.locator('[data-testid="org-acme-views"] button').click()
        await page.wait_for_url("**/o/acme-views/")
        banner = page.locator('[data-testid="support-banner"]')
        assert "Support view — read only" in await banner.inner_text()
        assert "Acme Views" in await banner.inner_text()
        await page.screenshot(path=artifact("console-support-view.png"), full_page=True)
        await page.goto(f"{base}/o/acme-views/team")
        assert await banner.count() == 1
        # A write from the browser (with the page's own CSRF token) is refused with the reason.
        status = await page.evaluate("""async () => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/o/acme-views/team/leave', {method: 'POST', headers: {'x-csrftoken': token}});
            return [r.status, await r.text()]; }""")
        assert status[0] == 403 and "Support view is read only" in status[1]
        await banner.locator("button").click()
        await page.wait_for_url("**/admin/customers")
        await page.goto(f"{base}/o/acme-views/")
        assert await page.locator('[data-testid="support-banner"]').count() == 0

        email = f"olga-{uuid.uuid4().hex[:6]}@platform.example"
        creds = await create_operator(app.state.portal, email, "Olga Operator")
        ops = await browser.new_page(viewport={"width": 1360, "height": 900})
        await ops.goto(f"http://{PLATFORM}:{port}/operator")
        await ops.wait_for_url("**/operator/login")
        await ops.screenshot(path=artifact("operator-login.png"))
        await ops.fill("#email", email)
        await ops.fill("#password", creds.password)
        await ops.fill("#code", pyotp.TOTP(creds.totp_secret).now())
        await ops.click("button[type=submit]")
        await ops.wait_for_url("**/operator")
        await ops.fill('input[name="q"]', tenant.slug)
        await ops.click("text=Search")
        await ops.wait_for_url("**/operator?q=*")
        row = ops.locator(f'[data-testid="tenant-{tenant.slug}"]')
        assert tenant.host in await row.inner_text()
        await ops.screenshot(path=artifact("operator-tenants.png"), full_page=True)
        await row.locator("a").click()
        await ops.wait_for_url(f"**/operator/tenants/{tenant.slug}")
        ops.on("dialog", lambda dialog: dialog.accept())
        await ops.click("text=Suspend tenant")
        await ops.wait_for_url("**?saved=suspended")
        await ops.screenshot(path=artifact("operator-tenant-suspended.png"), full_page=True)
        visitor = await browser.new_page()
        response = await visitor.goto(f"{base}/login")
        assert response is not None and response.status == 404
        await ops.click("text=Resume tenant")
        await ops.wait_for_url("**?saved=active")
        response = await visitor.goto(f"{base}/login")
        assert response is not None and response.status == 200
