"""Both demo portals in a real browser: each shows its own name, logo and brand colour after signing in."""

from __future__ import annotations

import pytest

from core.testing import artifact

pytestmark = pytest.mark.browser

DEMO = [
    ("acme.localhost", "owner@acme.example", "Acme Cloud", "rgb(194, 65, 12)", "layout-sidebar"),
    ("globex.localhost", "owner@globex.example", "Globex Portal", "rgb(15, 118, 110)", "layout-topbar"),
]


@pytest.mark.parametrize(("host", "email", "name", "primary_rgb", "layout"), DEMO)
async def test_demo_tenant_is_branded(live_portal, browser, host, email, name, primary_rgb, layout):
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(f"http://{host}:{live_portal}/login")
    assert await page.locator(".brand-name").inner_text() == name
    await page.screenshot(path=artifact(f"{host}-login.png"), full_page=True)
    await page.fill("#email", email)
    await page.fill("#password", "portal-demo")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/o/*/")
    assert name in await page.title()
    assert layout in (await page.get_attribute("html", "class") or "")
    logo = page.locator("img.brand-logo")
    assert await logo.evaluate("img => img.complete && img.naturalWidth > 0")
    primary = await page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--color-primary')")
    assert primary.strip() == "#" + "".join(f"{int(c):02x}" for c in primary_rgb[4:-1].split(", "))
    current = page.locator('.sidenav a[aria-current="page"]')
    assert await current.count() == 1
    await page.screenshot(path=artifact(f"{host}-overview.png"), full_page=True)
    await page.close()


async def test_custom_domain_serves_the_same_tenant(live_portal, browser):
    page = await browser.new_page()
    await page.goto(f"http://portal.globex.test:{live_portal}/login")
    assert await page.locator(".brand-name").inner_text() == "Globex Portal"
    response = await page.goto(f"http://unknown.test:{live_portal}/login")
    assert response.status == 404
    assert "not connected to a portal" in await page.content()
    await page.close()
