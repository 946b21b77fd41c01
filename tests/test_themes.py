"""Themes: tokens → CSS custom properties, branding overrides, lookup order, themed error pages."""

from __future__ import annotations

import types
from pathlib import Path

from litestar import get

from core import hookimpl
from core.context import Ctx
from core.contracts import PluginInfo, PluginRoutes
from core.settings import PROJECT_ROOT
from core.testing import client_for, login
from core.themes import ThemeRegistry, contrast_ratio, readable_on, stylesheet


def test_branding_overrides_theme_tokens_and_derives_readable_text():
    themes = ThemeRegistry(PROJECT_ROOT / "themes", [])
    css = stylesheet(themes.get("default"), {"primary_color": "#FFEE00"})
    assert "--color-primary: #ffee00;" in css
    assert "--color-primary-contrast: #111827;" in css  # dark text on yellow
    assert readable_on("#0f766e") == "#ffffff"
    assert contrast_ratio("#000000", "#ffffff") == 21


def test_the_two_themes_differ_in_more_than_colour():
    themes = ThemeRegistry(PROJECT_ROOT / "themes", [])
    default, harbor = themes.get("default"), themes.get("harbor")
    assert default.layout != harbor.layout
    for token in ("font-heading", "radius", "space", "font-size", "color-header-bg"):
        assert default.tokens[token] != harbor.tokens[token], token
    assert themes.get("no-such-theme").name == "default"


async def test_each_tenant_gets_its_brand_stylesheet_and_logo(portal_app, make_tenant):
    a = await make_tenant(theme="default", branding={"product_name": "Alpha", "primary_color": "#112233"})
    b = await make_tenant(theme="harbor", branding={"product_name": "Beta", "primary_color": "#445566"})
    pages = {}
    for tenant in (a, b):
        async with client_for(portal_app, tenant.host) as client:
            page = await client.get("/login")
            href = page.text.split('href="/assets/brand/')[1].split('"')[0]
            css = await client.get(f"/assets/brand/{href}")
            assert css.headers["cache-control"].startswith("public, max-age=31536000")
            pages[tenant.slug] = (page.text, css.text)
            assert (await client.get("/assets/logo")).headers["content-type"].startswith("image/svg")
    assert "--color-primary: #112233;" in pages[a.slug][1] and "layout-sidebar" in pages[a.slug][0]
    assert "--color-primary: #445566;" in pages[b.slug][1] and "layout-topbar" in pages[b.slug][0]
    assert "Georgia" in pages[b.slug][1]


async def test_template_lookup_theme_then_plugin_then_core(portal_app_factory, make_tenant, tmp_path):
    themes_dir = tmp_path / "themes"
    for name in ("default", "custom"):
        (themes_dir / name / "templates" / "shadow").mkdir(parents=True)
        (themes_dir / name / "theme.toml").write_text(f'label = "{name}"\n')
    (themes_dir / "custom" / "templates" / "shadow" / "page.html").write_text("from the theme")
    plugin_templates = tmp_path / "plugin_templates" / "shadow"
    plugin_templates.mkdir(parents=True)
    (plugin_templates / "page.html").write_text("from the plugin")

    @get("/", name="shadow_page")
    async def shadow_page(ctx: Ctx) -> str:
        from core.rendering import render_string

        return await render_string(ctx, "shadow/page.html")

    module = types.ModuleType("shadow_plugin")
    module.portal_plugin = hookimpl(lambda: PluginInfo("shadow", "Shadow", "1.0.0"))
    module.portal_routes = hookimpl(lambda: PluginRoutes(pages=[shadow_page]))
    module.portal_template_dirs = hookimpl(lambda: [Path(plugin_templates.parent)])
    app = await portal_app_factory(module, themes_dir=themes_dir)
    themed = await make_tenant(plugins=["shadow"], theme="custom")
    plain = await make_tenant(plugins=["shadow"], theme="default")
    for tenant, expected in ((themed, "from the theme"), (plain, "from the plugin")):
        async with client_for(app, tenant.host) as client:
            await login(client, tenant.email("owner"))
            assert (await client.get(f"/o/{tenant.org_slug}/shadow")).text == expected


async def test_error_pages_are_themed(portal_app_factory, make_tenant):
    @get("/boom", name="boom")
    async def boom() -> str:
        raise ZeroDivisionError("secret internals")

    module = types.ModuleType("boom_plugin")
    module.portal_plugin = hookimpl(lambda: PluginInfo("boom", "Boom", "1.0.0"))
    module.portal_routes = hookimpl(lambda: PluginRoutes(public=[boom]))
    app = await portal_app_factory(module)
    tenant = await make_tenant(plugins=["boom"], branding={"product_name": "Oops Inc"})
    async with client_for(app, tenant.host) as client:
        missing = await client.get("/definitely-not-here")
        assert missing.status_code == 404 and "Oops Inc" in missing.text and "Page not found" in missing.text
        crash = await client.get("/boom")
        assert crash.status_code == 500 and "Oops Inc" in crash.text and "Something went wrong" in crash.text
        assert "secret internals" not in crash.text and "Traceback" not in crash.text
        api = await client.get("/api/v1/nothing")
        assert api.status_code == 404 and api.json()["status"] == 404
