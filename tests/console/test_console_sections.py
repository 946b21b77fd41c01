"""Sections: switching a plugin off makes its pages 404 on this tenant only; switching it on brings them back."""

from __future__ import annotations

from litestar import get

from core import hookimpl
from core.contracts import NavItem, PluginInfo, PluginRoutes
from core.tables import Tenant
from core.testing import client_for, csrf_token, login


class Widgets:
    """A throwaway partner-style plugin with one page."""

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        return PluginInfo("widgets", "Widgets", "2.3.4", "Build and share widgets.")

    @hookimpl
    def portal_routes(self) -> PluginRoutes:
        @get("/", name="widgets_home")
        async def widgets_home() -> str:
            return "Widgets home"

        return PluginRoutes(pages=[widgets_home])

    @hookimpl
    def portal_nav_items(self, ctx) -> list[NavItem]:
        return [NavItem("Widgets", "/o/{org}/widgets", None, order=50)]


async def _save_sections(client, slugs):
    token = await csrf_token(client, "/admin/sections")
    return await client.post("/admin/sections", data={"_csrf_token": token, "plugins": slugs})


async def test_disable_and_enable_a_plugin(portal_app_factory, make_tenant, admin_client, recorder):
    app = await portal_app_factory(Widgets(), recorder)
    tenant = await make_tenant(plugins=["widgets", "recorder"])
    other = await make_tenant(plugins=["widgets"])
    async with admin_client(app, tenant) as client:
        page = await client.get("/admin/sections")
        assert page.status_code == 200
        assert "Widgets" in page.text and "2.3.4" in page.text and "Build and share widgets." in page.text
        assert 'value="widgets" checked' in page.text
        assert (await client.get(f"/o/{tenant.org_slug}/widgets")).status_code == 200

        response = await _save_sections(client, ["recorder"])
        assert response.status_code == 302
        assert (await client.get(f"/o/{tenant.org_slug}/widgets")).status_code == 404
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert f"/o/{tenant.org_slug}/widgets" not in overview.text
        assert 'value="widgets" checked' not in (await client.get("/admin/sections")).text

        response = await _save_sections(client, ["recorder", "widgets", "not-installed"])
        assert response.status_code == 302
        assert (await client.get(f"/o/{tenant.org_slug}/widgets")).status_code == 200
    row = await Tenant.select(Tenant.plugins).where(Tenant.id == tenant.id).first()
    from core.db import load_json

    assert sorted(load_json(row["plugins"])) == ["recorder", "widgets"]
    off, on = recorder.of("console.sections.updated")
    assert "widgets" in off.before["enabled"] and "widgets" not in off.after["enabled"]
    assert "widgets" in on.after["enabled"]
    # The other tenant never lost the plugin.
    async with client_for(app, other.host) as client:
        await login(client, other.email("member"))
        assert (await client.get(f"/o/{other.org_slug}/widgets")).status_code == 200
