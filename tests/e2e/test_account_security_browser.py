"""Account security in a real browser: enrol 2FA from the QR page, sign in elsewhere with a code, revoke it."""

from __future__ import annotations

import time

import pyotp
import pytest

from core.testing import artifact

pytestmark = pytest.mark.browser

HOST = "acme.localhost"
EMAIL = "member@acme.example"
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]):not([hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)"""


async def _sign_in(page, base: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#email", EMAIL)
    await page.fill("#password", "portal-demo")
    await page.click("button[type=submit]")


async def test_enrol_two_factor_and_manage_sessions(live_portal, browser):
    base = f"http://{HOST}:{live_portal}"
    first = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await first.new_page()
    await _sign_in(page, base)
    await page.wait_for_url("**/o/*/")
    await page.goto(f"{base}/account")
    await page.click("text=Account security")
    await page.wait_for_url("**/account/security")
    await page.click("text=Set up two-factor authentication")
    await page.wait_for_url("**/account/security/2fa/setup")
    assert await page.locator("figure svg.segno").count() == 1
    assert await page.evaluate(UNLABELLED) == []
    await page.screenshot(path=artifact("account-security-setup.png"), full_page=True)
    secret = (await page.locator("code.secret").inner_text()).replace(" ", "")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.fill("#current_password", "portal-demo")
    await page.click("text=Turn on two-factor authentication")
    codes = page.locator("[data-testid=recovery-codes] li")
    await codes.first.wait_for()
    assert await codes.count() == 10
    await page.screenshot(path=artifact("account-security-recovery-codes.png"), full_page=True)

    second = await browser.new_context(viewport={"width": 420, "height": 800}, user_agent=(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1"))
    phone = await second.new_page()
    await _sign_in(phone, base)
    await phone.wait_for_url("**/login/2fa")
    assert await phone.evaluate(UNLABELLED) == []
    await phone.screenshot(path=artifact("login-two-factor.png"), full_page=True)
    await phone.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))  # the current step was spent enrolling
    await phone.click("button[type=submit]")
    await phone.wait_for_url("**/o/*/")

    await page.click("text=I have saved my codes")
    await page.wait_for_url("**/account/security")
    rows = page.locator(".sessions-table tbody tr")
    assert await rows.count() == 2
    assert await page.locator('tr[aria-current="true"] .badge').inner_text() == "This session"
    assert await page.evaluate(UNLABELLED) == []
    await page.screenshot(path=artifact("account-security.png"), full_page=True)
    await page.locator("tr:has-text('Safari on iPhone') button").click()
    await page.wait_for_url("**/account/security?done=session-revoked")
    assert await rows.count() == 1
    await phone.reload()
    assert "/login" in phone.url
    await first.close()
    await second.close()


async def test_owner_sees_the_organization_switch(live_portal, browser):
    base = f"http://{HOST}:{live_portal}"
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("#email", "owner@acme.example")
    await page.fill("#password", "portal-demo")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/o/*/")
    await page.goto(f"{base}/account/security")
    section = page.locator("section[aria-labelledby=orgs-title]")
    assert await section.count() == 1
    await section.locator("button:has-text('Require')").first.click()
    assert "for your own account first" in await page.locator("[role=alert]").first.inner_text()
    assert await page.evaluate(UNLABELLED) == []
    await page.screenshot(path=artifact("account-security-owner.png"), full_page=True)
    await context.close()
