"""Favicon: ICO/PNG/SVG only, size and dimensions checked, SVG sanitised, served on every page of its tenant only."""

from __future__ import annotations

import io

from PIL import Image

from core.console.favicon import stored
from core.testing import client_for, csrf_token


def _icon(fmt: str, size=(32, 32), colour=(20, 83, 45, 255), **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, colour).save(out, format=fmt, **options)
    return out.getvalue()


async def _upload(client, name: str, data: bytes, kind: str = "image/x-icon"):
    token = await csrf_token(client, "/admin/branding")
    return await client.post("/admin/branding/favicon", data={"_csrf_token": token},
                             files={"favicon": (name, data, kind)})


async def test_favicon_upload_validation_and_serving(portal_app_factory, make_tenant, admin_client, recorder):
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["recorder"])
    other = await make_tenant()
    async with admin_client(app, tenant) as client:
        before = await client.get("/favicon.ico")
        assert before.status_code == 200 and before.headers["content-type"].startswith("image/svg+xml")  # theme's

        refusals = {
            "big.ico": (_icon("PNG") + b"\0" * (120 * 1024), "favicons may be at most 100 KB"),
            "photo.jpg": (_jpeg(), "JPEG files cannot be favicons"),
            "huge.png": (_icon("PNG", size=(1024, 1024)), "use between 16 and 512"),
            "tiny.png": (_icon("PNG", size=(8, 8)), "use between 16 and 512"),
            "text.ico": (b"hello, not an icon", "not an icon we can use"),
        }
        for name, (data, message) in refusals.items():
            response = await _upload(client, name, data)
            assert response.status_code == 400, name
            assert message in response.text, name
        assert await stored(tenant.id) is None

        ico = _icon("ICO", size=(48, 48), sizes=[(16, 16), (32, 32), (48, 48)]) + b"<script>trailing</script>"
        response = await _upload(client, "brand.ico", ico)
        assert response.status_code == 302 and response.headers["location"] == "/admin/branding?saved=favicon"
        served = await client.get("/favicon.ico")
        assert served.headers["content-type"] == "image/x-icon" and b"<script>" not in served.content
        assert Image.open(io.BytesIO(served.content)).format == "ICO"
        page = await client.get("/account")
        assert '<link rel="icon" href="/favicon.ico">' in page.text

        svg = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16" onload="alert(1)">'
               b'<script>alert(2)</script><rect width="16" height="16" fill="#14532d"/></svg>')
        assert (await _upload(client, "icon.svg", svg, "image/svg+xml")).status_code == 302
        served = await client.get("/favicon.ico")
        assert served.headers["content-type"] == "image/svg+xml"
        assert b"script" not in served.content and b"onload" not in served.content and b"<rect" in served.content
        assert "default-src 'none'" in served.headers["content-security-policy"]

    async with client_for(app, other.host) as visitor:  # another tenant keeps its own icon
        assert (await visitor.get("/favicon.ico")).headers["content-type"].startswith("image/svg+xml")
        assert b"#14532d" not in (await visitor.get("/favicon.ico")).content

    async with admin_client(app, tenant) as client:
        token = await csrf_token(client, "/admin/branding")
        response = await client.post("/admin/branding/favicon", data={"_csrf_token": token, "remove": "1"})
        assert response.headers["location"] == "/admin/branding?saved=favicon-removed"
    assert await stored(tenant.id) is None
    updated = recorder.of("console.favicon.updated")
    assert [e.after["favicon_type"] for e in updated] == ["image/x-icon", "image/svg+xml"]
    assert updated[1].before == {"favicon_type": "image/x-icon"}
    assert len(recorder.of("console.favicon.removed")) == 1


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(out, format="JPEG")
    return out.getvalue()
