"""In Chromium: a tenant admin changes the brand colour and logo, sees the live preview change before saving, then
the portal preview, the portal itself and the invoice preview (billing plugin, rendered to PNG with pdftoppm) after
saving: the old colour gone, the new colour and the new logo's pixels there."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image

from core.settings import BUILTIN_PLUGINS
from core.testing import artifact, headless_chromium, live_server, running
from tests.console.conftest import make_tenant_admin

pytestmark = pytest.mark.browser

PLAN = {"id": "pro", "name": "Pro", "price": 2900, "currency": "EUR", "interval": "month", "limits": {"seats": 5},
        "features": ["Support"], "stripe_price_id": ""}


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 96), colour).save(out, format="PNG")
    return out.getvalue()


FETCH = """async url => {
  const r = await fetch(url); const bytes = new Uint8Array(await r.arrayBuffer()); let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return {status: r.status, type: r.headers.get("content-type"), body: btoa(s)};
}"""


async def _fetch(page, url: str) -> tuple[int, str, bytes]:
    """GET through the browser itself (its cookies, its host mapping)."""
    import base64

    result = await page.evaluate(FETCH, url)
    return result["status"], result["type"], base64.b64decode(result["body"])


LOGO = (109, 40, 217)  # a purple no theme uses, so its pixels can only come from the uploaded logo
OLD, NEW = (194, 65, 12), (20, 83, 45)


def _pdf_png(data: bytes, name: str) -> Image.Image:
    """Page 1 of the PDF as an image (pdftoppm), kept in the test artifacts to look at."""
    root = artifact(name).removesuffix(".png")
    subprocess.run(["pdftoppm", "-png", "-r", "72", "-singlefile", "-", root], input=data, capture_output=True,
                   check=True)
    with Image.open(root + ".png") as image:
        return image.convert("RGB")


def _pixels(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 10) -> int:
    """How many pixels are (nearly) ``colour``."""
    return sum(1 for pixel in image.get_flattened_data()
               if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))


def _pdf_text(data: bytes) -> str:
    result = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True)
    return result.stdout.decode()


@pytest.fixture
async def served(portal_settings, portal_database):
    """The app with every built-in plugin (billing's invoice preview included), served on a loopback port."""
    from core.app import create_app

    app = create_app(portal_settings.with_overrides(builtin_plugins=BUILTIN_PLUGINS))
    async with running(app), live_server(app) as port:
        yield app, port


async def test_brand_colour_and_logo_in_the_browser(served, make_tenant, tmp_path):
    app, port = served
    billing = "billing" in app.state.portal.plugins.plugins
    tenant = await make_tenant(plugins=["billing"] if billing else [], branding={
        "product_name": "Browser Cloud", "primary_color": "#c2410c", "legal_name": "Old Legal GmbH"},
        settings={"billing": {"plans": [PLAN], "currency": "EUR"}})
    await make_tenant_admin(tenant)
    await app.state.portal.directory.refresh()
    base = f"http://{tenant.host}:{port}"
    logo = tmp_path / "logo.png"
    logo.write_bytes(_png(LOGO))

    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1440, "height": 1000})
        await page.goto(f"{base}/login?next=/admin/branding")
        await page.fill("#email", tenant.email("admin"))
        await page.fill("#password", "correct-horse-battery")
        await page.click("button[type=submit]")
        await page.wait_for_url("**/admin/branding")

        preview = page.frame_locator("#preview")
        button = preview.locator(".button-primary").first
        background = "el => getComputedStyle(el).backgroundColor"
        assert await button.evaluate(background) == "rgb(194, 65, 12)"
        invoice_before = None
        if billing:
            assert await page.locator('[data-testid="invoice-preview-link"]').count() == 1
            status, kind, invoice_before = await _fetch(page, "/admin/billing/invoice-preview")
            assert status == 200 and kind == "application/pdf"

        # Typing a colour changes the preview at once; nothing is saved yet.
        await page.fill("#primary_color", "#14532d")
        await page.fill("#legal_name", "New Legal Ltd")
        await page.wait_for_function(
            "() => { const d = document.getElementById('preview').contentDocument;"
            " const b = d && d.querySelector('.button-primary');"
            " return b && getComputedStyle(b).backgroundColor === 'rgb(20, 83, 45)'; }", timeout=10000)
        await page.screenshot(path=artifact("console-branding-draft.png"), full_page=True)
        other = await browser.new_page()
        await other.goto(f"{base}/login")
        primary = "getComputedStyle(document.documentElement).getPropertyValue('--color-primary').trim()"
        assert await other.evaluate(primary) == "#c2410c"

        # An unreadable colour shows the refusal inside the preview, and saving it is refused.
        await page.fill("#primary_color", "#0077dd")
        await preview.locator('[data-testid="preview-problems"]').wait_for(timeout=10000)
        await page.click("text=Save branding")
        await page.wait_for_load_state()
        assert "WCAG AA needs 4.5:1" in await page.locator("#primary_color-error").inner_text()

        # Save a readable colour, upload a logo.
        await page.fill("#primary_color", "#14532d")
        await page.fill("#legal_name", "New Legal Ltd")
        await page.click("text=Save branding")
        await page.wait_for_url("**/admin/branding?saved=branding")
        await page.set_input_files("#logo", str(logo))
        await page.click("text=Upload logo")
        await page.wait_for_url("**/admin/branding?saved=logo")
        assert "Logo updated" in await page.locator(".alert-success").inner_text()

        # The portal preview on the reloaded console page: new colour and new logo.
        await preview.locator(".button-primary").first.wait_for(timeout=10000)
        assert await preview.locator(".button-primary").first.evaluate(background) == "rgb(20, 83, 45)"
        preview_logo = preview.locator("img.brand-logo")
        await page.wait_for_function(
            "() => { const d = document.getElementById('preview').contentDocument;"
            " const i = d && d.querySelector('img.brand-logo'); return i && i.complete && i.naturalWidth > 0; }",
            timeout=10000)
        assert await preview_logo.evaluate(
            "img => { const c = document.createElement('canvas'); c.width = c.height = 1;"
            " const x = c.getContext('2d'); x.drawImage(img, 0, 0, 1, 1);"
            " return Array.from(x.getImageData(0, 0, 1, 1).data).slice(0, 3); }") == list(LOGO)
        await page.screenshot(path=artifact("console-branding-saved.png"), full_page=True)

        # The portal itself, on the next request: new colour, new logo.
        await other.goto(f"{base}/login")
        assert await other.evaluate(primary) == "#14532d"
        header_logo = other.locator("img.brand-logo")
        assert await header_logo.evaluate("img => img.complete && img.naturalWidth === 96")
        pixel = await header_logo.evaluate(
            "img => { const c = document.createElement('canvas'); c.width = c.height = 1;"
            " const x = c.getContext('2d'); x.drawImage(img, 0, 0, 1, 1);"
            " return Array.from(x.getImageData(0, 0, 1, 1).data); }")
        assert pixel[:3] == list(LOGO)
        await other.screenshot(path=artifact("console-branding-after.png"), full_page=True)
        if billing:
            status, _kind, invoice_after = await _fetch(page, "/admin/billing/invoice-preview")
            assert status == 200
            assert invoice_after != invoice_before
            if shutil.which("pdftotext"):
                assert "New Legal Ltd" in _pdf_text(invoice_after)
                assert "Old Legal GmbH" in _pdf_text(invoice_before)
            if shutil.which("pdftoppm"):
                before = _pdf_png(invoice_before, "console-invoice-before.png")
                after = _pdf_png(invoice_after, "console-invoice-after.png")
                assert _pixels(before, OLD) > 50 and _pixels(before, NEW) == 0 and _pixels(before, LOGO) == 0
                assert _pixels(after, OLD) == 0 and _pixels(after, NEW) > 50
                assert _pixels(after, LOGO) > 50  # the uploaded logo is on the invoice
