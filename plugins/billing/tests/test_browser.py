"""Billing in a real browser (Debian Chromium via Playwright): invoices, a PDF download checked with pdftotext,
an upgrade previewed and confirmed. Screenshots (and the PDF's first page as PNG) go to ``test-artifacts/``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.testing import PASSWORD, artifact, headless_chromium, live_server
from plugins.billing.tables import Invoice, Subscription

pytestmark = pytest.mark.browser


async def test_invoices_pdf_download_and_upgrade_in_chromium(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works", pause_allowed=True)  # Starter, past due, a year of invoices
    org = f"/o/{tenant.org_slug}/billing"
    async with live_server(billing_app) as port, headless_chromium() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        base = f"http://{tenant.host}:{port}"
        await page.goto(f"{base}/login")
        await page.fill("input[name=email]", tenant.email("owner"))
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_load_state("networkidle")

        await page.goto(base + org)
        assert await page.locator("[data-testid=past-due-banner]").is_visible()
        rows = page.locator("section[aria-labelledby=invoices-title] tbody tr")
        assert await rows.count() == 10
        first_number = (await rows.nth(0).locator("td").nth(0).inner_text()).strip()
        await page.screenshot(path=artifact("billing-overview.png"), full_page=True)

        async with page.expect_download() as info:
            await rows.nth(0).get_by_role("link", name="Download PDF").click(modifiers=["Alt"])
        download = await info.value
        pdf_path = Path(artifact("billing-invoice.pdf"))
        await download.save_as(pdf_path)
        text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, check=True
                              ).stdout.decode()
        assert first_number in text and "Test Cloud GmbH" in text and "€22.61" in text
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf_path),
                        artifact("billing-invoice-page1")], check=True)

        await page.goto(f"{base}{org}/plans")
        await page.locator("[data-plan=team]").get_by_role("link", name="Upgrade").click()
        await page.wait_for_url(f"**{org}/plans/team")
        assert "€49.00 / month" in await page.locator("[data-testid=recurring]").inner_text()
        due_today = await page.locator("[data-testid=due-today]").inner_text()
        assert due_today.startswith("€") and due_today != "€0.00"
        await page.screenshot(path=artifact("billing-upgrade-preview.png"), full_page=True)
        await page.get_by_role("button", name="Confirm change").click()
        await page.wait_for_url(f"**{org}?ok=*")
        assert "You are now on Team" in await page.locator("[role=status]").inner_text()
        await page.screenshot(path=artifact("billing-upgraded.png"), full_page=True)
        await page.get_by_role("link", name="Cancel subscription").click()
        await page.wait_for_url(f"**{org}/cancel")
        assert await page.locator("[data-testid=pause-offer]").count() == 0  # past due: no pause offered
        assert "Switch to Starter instead" in await page.locator("[data-testid=retention-offer]").inner_text()
        await Subscription.update({Subscription.status: "active"}).where(Subscription.organization == tenant.org_id)
        await page.reload()
        assert await page.locator("[data-testid=pause-offer]").is_visible()
        await page.screenshot(path=artifact("billing-cancel-retention.png"), full_page=True)
        assert errors == []
        await context.close()
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert sub["plan_id"] == "team"
    assert await Invoice.count().where(Invoice.organization == tenant.org_id) == 13  # + the proration invoice
