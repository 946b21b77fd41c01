"""In a real browser: create a key, copy it, call ``/api/v1/api-keys/me`` with it, revoke it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.testing import PASSWORD

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/lib/chromium/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CALL_ME = """async (key) => {
  const response = await fetch("/api/v1/api-keys/me", {headers: {Authorization: "Bearer " + key}, credentials: "omit"});
  return {status: response.status, body: await response.json()};
}"""


@pytest.fixture
async def live(app: Any) -> AsyncIterator[int]:
    """The test app served by uvicorn on a free loopback port (its runtime is already started)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield port
    server.should_exit = True
    await task


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium; tenant hosts (``*.example.test``) resolve to the loopback."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP *.test 127.0.0.1"],
        )
        yield browser
        await browser.close()


async def test_create_copy_call_and_revoke_in_a_browser(app, live, chromium, tenant_factory):
    tenant = await tenant_factory()
    origin = f"http://{tenant.host}:{live}"
    ARTIFACTS.mkdir(exist_ok=True)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{origin}/login")
    await page.fill("#email", tenant.email("member"))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/o/*/")

    await page.click("nav.sidenav >> text=API keys")
    await page.wait_for_url(f"**/o/{tenant.org_slug}/api-keys")
    assert await page.locator(".empty-state").count() == 1
    await page.screenshot(path=str(ARTIFACTS / "apikeys-empty.png"), full_page=True)
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
    await page.screenshot(path=str(ARTIFACTS / "apikeys-created.png"), full_page=True)

    me = await page.evaluate(CALL_ME, key)
    assert me["status"] == 200 and me["body"]["scopes"] == ["api_keys.read", "widgets.read"]

    await page.click("text=Done — I stored the key")
    assert key not in await page.content()
    await page.screenshot(path=str(ARTIFACTS / "apikeys-list.png"), full_page=True)
    await page.click("table.apikeys-table >> text=Production server")
    await page.screenshot(path=str(ARTIFACTS / "apikeys-detail.png"), full_page=True)
    await page.click("text=Revoke key…")
    assert await page.locator("[data-testid=recent-use-warning]").count() == 1
    await page.screenshot(path=str(ARTIFACTS / "apikeys-revoke.png"), full_page=True)
    await page.click("button:has-text('Revoke key')")
    await page.wait_for_url("**/api-keys?done=revoked")
    assert "was revoked" in await page.content()

    gone = await page.evaluate(CALL_ME, key)
    assert gone["status"] == 401
    await page.close()
