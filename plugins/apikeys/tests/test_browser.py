"""In a real browser: create a key, copy it, call ``/api/v1/api-keys/me`` with it, revoke it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.testing import PASSWORD, artifact, live_server

pytestmark = pytest.mark.browser
CALL_ME = """async (key) => {
  const response = await fetch("/api/v1/api-keys/me", {headers: {Authorization: "Bearer " + key}, credentials: "omit"});
  return {status: response.status, body: await response.json()};
}"""


@pytest.fixture
async def live(app: Any) -> AsyncIterator[int]:
    """The test app served on a free loopback port (its runtime is already started)."""
    async with live_server(app) as port:
        yield port


@pytest.fixture
async def chromium(portal_browser: Any) -> Any:
    """Headless Debian Chromium (``core.testing``); tenant hosts resolve to the loopback."""
    return portal_browser


async def test_create_copy_call_and_revoke_in_a_browser(app, live, chromium, tenant_factory):
    tenant = await tenant_factory()
    origin = f"http://{tenant.host}:{live}"
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{origin}/login")
    await page.fill("#email", tenant.email("member"))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/o/*/")

    await page.click("nav.sidenav >> text=API keys")
    await page.wait_for_url(f"**/o/{tenant.org_slug}/api-keys")
    assert await page.locator(".empty-state").count() == 1
    await page.screenshot(path=artifact("apikeys-empty.png"), full_page=True)
    await page.click("text=Create your first API key")
    await page.fill("#name", "Production server")
    await page.check("input[name=scopes][value='widgets.read']")
    await page.check("input[name=scopes][value='api_keys.read']")
    assert await page.locator("input[name=scopes][value='widgets.admin']").is_disabled()
    await page.select_option("#expiry", "90")
    await page.click("button:has-text('Create key')")
    secret = page.locator("[data-testid=new-key]")
    key = await secret.input_value()
    assert key.startswith("pk_live_")
    await page.click("#copy-key")
    await page.wait_for_selector("#copy-status:has-text('Copied')")
    selected = await page.evaluate("window.getSelection().toString() || document.activeElement.value")
    assert selected == key
    await page.screenshot(path=artifact("apikeys-created.png"), full_page=True)

    me = await page.evaluate(CALL_ME, key)
    assert me["status"] == 200 and me["body"]["scopes"] == ["api_keys.read", "widgets.read"]

    await page.click("text=Done — I stored the key")
    assert key not in await page.content()
    await page.screenshot(path=artifact("apikeys-list.png"), full_page=True)
    await page.click("table.apikeys-table >> text=Production server")
    await page.screenshot(path=artifact("apikeys-detail.png"), full_page=True)
    await page.click("text=Revoke key…")
    assert await page.locator("[data-testid=recent-use-warning]").count() == 1
    await page.screenshot(path=artifact("apikeys-revoke.png"), full_page=True)
    await page.click("button:has-text('Revoke key')")
    await page.wait_for_url("**/api-keys?done=revoked")
    assert "was revoked" in await page.content()

    gone = await page.evaluate(CALL_ME, key)
    assert gone["status"] == 401
    await page.close()
