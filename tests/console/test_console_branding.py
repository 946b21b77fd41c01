"""Branding: saved values reach the next request (new CSS hash and colours), contrast refusals, logo uploads,
the live preview, and one event per change."""

from __future__ import annotations

import io
import re

from PIL import Image

from core.tables import Tenant
from core.testing import client_for, csrf_token

BRAND_CSS = re.compile(r'href="(/assets/brand/[0-9a-f]+\.css)"')


def _form(**values: str) -> dict[str, str]:
    base = {"product_name": "", "theme": "default", "primary_color": "", "accent_color": "", "sender_name": "",
            "sender_email": "", "support_email": "", "support_url": "", "legal_name": "", "legal_address": "",
            "tax_id": ""}
    return {**base, **values}


async def _post(client, path, data, files=None):
    token = await csrf_token(client, "/admin/branding")
    return await client.post(path, data={"_csrf_token": token, **data}, files=files)


async def _version(tenant) -> int:
    return (await Tenant.select(Tenant.version).where(Tenant.id == tenant.id).first())["version"]


async def test_branding_change_applies_on_next_request(portal_app_factory, make_tenant, admin_client, recorder):
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["recorder"], branding={"product_name": "Old Name"})
    async with admin_client(app, tenant) as client:
        before = await client.get("/account")
        old_css = BRAND_CSS.search(before.text).group(1)
        assert "#1d4ed8" not in (await client.get(old_css)).text
        version = await _version(tenant)
        response = await _post(client, "/admin/branding", _form(
            product_name="New Cloud", primary_color="#1d4ed8", accent_color="#7c3aed", sender_name="New Cloud",
            sender_email="billing@new.example", support_email="help@new.example",
            support_url="https://new.example/help", legal_name="New Cloud Ltd", legal_address="1 Road\nTown",
            tax_id="GB123", theme="harbor"))
        assert response.status_code == 302 and response.headers["location"] == "/admin/branding?saved=branding"
        after = await client.get("/account")
        new_css = BRAND_CSS.search(after.text).group(1)
        assert new_css != old_css
        css = (await client.get(new_css)).text
        assert "--color-primary: #1d4ed8;" in css and "--color-accent: #7c3aed;" in css
        assert "New Cloud" in after.text and "Old Name" not in after.text
        assert 'class="layout-topbar"' in after.text
        assert await _version(tenant) == version + 1
        saved = await client.get("/admin/branding?saved=branding")
        assert "Branding saved" in saved.text and 'value="GB123"' in saved.text
    row = await Tenant.select(Tenant.branding, Tenant.theme).where(Tenant.id == tenant.id).first()
    from core.db import load_json

    branding = load_json(row["branding"])
    assert branding["legal_name"] == "New Cloud Ltd" and branding["sender_email"] == "billing@new.example"
    assert row["theme"] == "harbor"
    [event] = recorder.of("console.branding.updated")
    assert event.before["product_name"] == "Old Name" and event.after["product_name"] == "New Cloud"
    assert event.after["theme"] == "harbor" and event.actor.display == tenant.email("admin")


async def test_unreadable_colours_are_refused(portal_app, make_tenant, admin_client):
    tenant = await make_tenant(branding={"product_name": "Contrast Co"})
    async with admin_client(portal_app, tenant) as client:
        version = await _version(tenant)
        # Mid blue: neither white nor dark text reaches 4.5:1 on it.
        response = await _post(client, "/admin/branding", _form(primary_color="#0077dd"))
        assert response.status_code == 400
        assert "WCAG AA needs 4.5:1" in response.text and "Text on buttons in #0077dd" in response.text
        assert "Nothing was saved" in response.text
        # Yellow: dark text on it is fine, but yellow links on white are unreadable.
        response = await _post(client, "/admin/branding", _form(primary_color="#ffff00"))
        assert response.status_code == 400 and "Links in #ffff00" in response.text
        response = await _post(client, "/admin/branding", _form(accent_color="#0088aa"))
        assert response.status_code == 400 and "Text on highlights in #0088aa" in response.text
        response = await _post(client, "/admin/branding", _form(primary_color="not-a-colour"))
        assert response.status_code == 400 and "Enter a colour like" in response.text
        assert await _version(tenant) == version
        assert (await _post(client, "/admin/branding", _form(primary_color="#1e3a8a"))).status_code == 302


async def test_invalid_fields_are_explained(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    async with admin_client(portal_app, tenant) as client:
        response = await _post(client, "/admin/branding", _form(
            sender_email="nope", support_url="javascript:alert(1)", theme="no-such-theme",
            sender_name='Evil <x@y>'))
        assert response.status_code == 400
        assert "Enter an email address" in response.text
        assert "Enter a full web address starting with https://" in response.text
        assert "Choose one of the listed themes" in response.text
        assert "A sender name cannot contain" in response.text


def _png(size=(64, 64), colour=(200, 30, 30, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, colour).save(out, format="PNG")
    return out.getvalue()


async def test_logo_upload_validation(portal_app_factory, make_tenant, admin_client, recorder):
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["recorder"])
    async with admin_client(app, tenant) as client:
        version = await _version(tenant)
        too_big = _png() + b"\0" * (600 * 1024)
        response = await _post(client, "/admin/branding/logo", {}, files={"logo": ("big.png", too_big, "image/png")})
        assert response.status_code == 400 and "logos may be at most 512 KB" in response.text
        response = await _post(client, "/admin/branding/logo", {},
                               files={"logo": ("logo.pdf", b"%PDF-1.4\n%...\n", "image/png")})
        assert response.status_code == 400 and "not an image we can use" in response.text
        response = await _post(client, "/admin/branding/logo", {},
                               files={"logo": ("broken.png", _png()[:60], "image/png")})
        assert response.status_code == 400
        response = await _post(client, "/admin/branding/logo", {},
                               files={"logo": ("x.svg", b'<!DOCTYPE svg [<!ENTITY x "y">]><svg>&x;</svg>',
                                               "image/svg+xml")})
        assert response.status_code == 400 and "DTDs/entities" in response.text
        assert await _version(tenant) == version

        response = await _post(client, "/admin/branding/logo", {}, files={"logo": ("ok.png", _png(), "image/png")})
        assert response.status_code == 302
        served = await client.get(f"/assets/logo?v={version + 1}")
        assert served.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(served.content)).size == (64, 64)
    assert [e.after["logo_type"] for e in recorder.of("console.logo.updated")] == ["image/png"]


MALICIOUS_SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10"
     onload="alert('svg')">
  <script>alert(document.cookie)</script>
  <style>@import url(https://evil.example/x.css);</style>
  <foreignObject><body xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(2)"/></body></foreignObject>
  <a xlink:href="javascript:alert(3)"><rect width="10" height="10" fill="#c2410c"/></a>
  <circle cx="5" cy="5" r="3" fill="url(#g)" onclick="alert(4)" style="fill: url(https://evil.example/i)"/>
  <use href="https://evil.example/sprite.svg#a"/>
  <linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient>
</svg>"""


async def test_malicious_svg_is_sanitised(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    async with admin_client(portal_app, tenant) as client:
        response = await _post(client, "/admin/branding/logo", {},
                               files={"logo": ("evil.svg", MALICIOUS_SVG, "image/svg+xml")})
        assert response.status_code == 302
    row = await Tenant.select(Tenant.logo, Tenant.logo_type).where(Tenant.id == tenant.id).first()
    svg = bytes(row["logo"]).decode()
    assert row["logo_type"] == "image/svg+xml"
    for bad in ("script", "onload", "onclick", "onerror", "foreignObject", "javascript:", "evil.example", "@import",
                "style"):
        assert bad not in svg, bad
    assert "<circle" in svg and 'fill="url(#g)"' in svg and "linearGradient" in svg
    async with client_for(portal_app, tenant.host) as anonymous:
        served = await anonymous.get("/assets/logo")
        assert served.headers["content-type"] == "image/svg+xml"
        assert "default-src 'none'" in served.headers["content-security-policy"]


async def test_logo_removal(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    async with admin_client(portal_app, tenant) as client:
        await _post(client, "/admin/branding/logo", {}, files={"logo": ("ok.png", _png(), "image/png")})
        response = await _post(client, "/admin/branding/logo", {"remove": "1"})
        assert response.status_code == 302 and "logo-removed" in response.headers["location"]
    row = await Tenant.select(Tenant.logo_type).where(Tenant.id == tenant.id).first()
    assert row["logo_type"] is None


async def test_live_preview_renders_draft_without_saving(portal_app, make_tenant, admin_client):
    tenant = await make_tenant(branding={"product_name": "Saved Name", "primary_color": "#c2410c"})
    async with admin_client(portal_app, tenant) as client:
        version = await _version(tenant)
        page = await client.get("/admin/branding/preview", params={
            "product_name": "Draft Name", "primary_color": "#14532d", "theme": "harbor"})
        assert page.status_code == 200
        assert "Draft Name" in page.text and 'class="layout-topbar"' in page.text
        css_url = re.search(r'href="(/admin/branding/preview\.css\?[^"]+)"', page.text).group(1).replace("&amp;", "&")
        css = (await client.get(css_url)).text
        assert "--color-primary: #14532d;" in css
        bad = await client.get("/admin/branding/preview", params={"primary_color": "#0077dd"})
        assert "cannot be saved" in bad.text and "#0077dd" in bad.text
        assert await _version(tenant) == version
        assert "Saved Name" in (await client.get("/account")).text
