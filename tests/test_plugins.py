"""The plugin contract: a throwaway plugin adds a route, nav item, permission, template, card and CLI
command on tenants that enable it — and nothing at all on tenants that don't."""

from __future__ import annotations

import inspect
import logging
import sys
import textwrap
import types
from datetime import UTC, datetime

import pytest
from click import Group
from click.testing import CliRunner

from core import hookimpl, hookspecs
from core.app import create_app
from core.contracts import PluginInfo
from core.db import atomic
from core.events import Target, emit
from core.plugins import PluginError, PluginHost
from core.testing import client_for, login
from tests.plugins import everything

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_enabled_tenant_gets_route_nav_permission_template_card_and_api(portal_app_factory, make_tenant):
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=["everything"])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("member"))
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert overview.status_code == 200
        assert f'href="/o/{tenant.org_slug}/everything"' in overview.text
        assert "Everything card" in overview.text and "42" in overview.text
        page = await client.get(f"/o/{tenant.org_slug}/everything")
        assert page.status_code == 200
        assert "Hello from the everything plugin" in page.text
        assert (await client.get("/everything-public")).status_code == 200
        assert (await client.get("/static/plugins/everything/everything.css")).status_code == 200
    async with client_for(app, tenant.host) as api:
        ping = await api.get("/api/v1/everything/ping", headers={"Authorization": f"Bearer {everything.API_TOKEN}"})
        assert ping.status_code == 200
        assert ping.json()["organization"] == tenant.org_slug
        assert (await api.get("/api/v1/everything/ping")).status_code == 401
        assert (await api.get("/api/v1/everything/ping", headers={"Authorization": "Bearer nope"})).status_code == 401
    runtime = app.state.portal
    record = runtime.directory.lookup(tenant.host)
    assert "everything.view" in runtime.permissions_for_role(record, "member")


async def test_disabled_tenant_gets_nothing_and_urls_answer_404(portal_app_factory, make_tenant):
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=[])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert overview.status_code == 200
        assert "/everything" not in overview.text
        assert "Everything card" not in overview.text
        hidden = (f"/o/{tenant.org_slug}/everything", "/everything-public", "/static/plugins/everything/everything.css")
        for path in hidden:
            response = await client.get(path)
            assert response.status_code == 404, path
        login_page_client = client_for(app, tenant.host)
        assert "Everything ID" not in (await login_page_client.get("/login")).text
        api = await client.get("/api/v1/everything/ping", headers={"Authorization": f"Bearer {everything.API_TOKEN}"})
        assert api.status_code == 404
    runtime = app.state.portal
    record = runtime.directory.lookup(tenant.host)
    assert "everything.view" not in runtime.permissions_for_role(record, "owner")
    assert not runtime.plugins.is_enabled("everything", record)


async def test_role_without_permission_gets_themed_403_and_no_link(portal_app_factory, make_tenant):
    app = await portal_app_factory(everything)
    tenant = await make_tenant(plugins=["everything"], branding={"product_name": "Forbidden Co"})
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert "/everything" not in overview.text
        page = await client.get(f"/o/{tenant.org_slug}/everything")
        assert page.status_code == 403
        assert "Forbidden Co" in page.text and "access" in page.text


async def test_plugin_cli_command_and_plugins_list():
    group = Group("portal")
    host = PluginHost()
    host.register(everything)
    host.call_build("portal_cli", group=group)
    result = CliRunner().invoke(group, ["everything-hello"])
    assert result.exit_code == 0
    assert "hello from everything" in result.output


def test_portal_plugins_list_shows_loaded_plugins():
    from core.cli import cli

    result = CliRunner().invoke(cli, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("core")
    assert "builtin" in result.output


async def test_hook_that_raises_is_logged_and_skipped(portal_app_factory, make_tenant, caplog):
    broken = types.ModuleType("broken_plugin")

    @hookimpl
    def portal_plugin():
        return PluginInfo("broken", "Broken", "0.1.0")

    @hookimpl
    def portal_nav_items(ctx):
        raise RuntimeError("nav exploded")

    @hookimpl
    async def portal_dashboard_cards(ctx):
        raise RuntimeError("cards exploded")

    broken.portal_plugin, broken.portal_nav_items, broken.portal_dashboard_cards = (
        portal_plugin, portal_nav_items, portal_dashboard_cards)
    app = await portal_app_factory(broken)
    tenant = await make_tenant(plugins=["broken"])
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        with caplog.at_level(logging.ERROR, logger="portal.plugins"):
            overview = await client.get(f"/o/{tenant.org_slug}/")
    assert overview.status_code == 200
    assert "Your organization" in overview.text
    assert "nav exploded" in caplog.text and "cards exploded" in caplog.text


def test_misspelled_hook_fails_at_startup(portal_settings):
    typo = types.ModuleType("typo_plugin")

    @hookimpl
    def portal_plugin():
        return PluginInfo("typo", "Typo", "0.1.0")

    def portal_nav_item(ctx):  # missing "s": must not be silently ignored
        return []

    typo.portal_plugin, typo.portal_nav_item = portal_plugin, hookimpl(portal_nav_item)
    with pytest.raises(PluginError, match="portal_nav_item"):
        create_app(portal_settings, extra_plugins=[typo])


def test_incompatible_plugin_is_refused():
    old = types.ModuleType("old_plugin")

    @hookimpl
    def portal_plugin():
        return PluginInfo("old", "Old", "0.1.0", requires_portal=">=2,<3")

    old.portal_plugin = portal_plugin
    with pytest.raises(PluginError, match="needs portal >=2,<3"):
        PluginHost().register(old)


def test_each_app_has_its_own_plugin_manager(portal_settings):
    with_plugin = create_app(portal_settings, extra_plugins=[everything])
    without = create_app(portal_settings)
    assert "everything" in with_plugin.state.portal.plugins.plugins
    assert "everything" not in without.state.portal.plugins.plugins


def test_entry_point_plugins_load_and_allowlist_restricts(tmp_path, monkeypatch):
    (tmp_path / "partner_plugin.py").write_text(textwrap.dedent('''
        from core import hookimpl
        from core.contracts import PluginInfo

        @hookimpl
        def portal_plugin():
            return PluginInfo("partner", "Partner", "2.0.0", "Installed from an entry point")
    '''))
    dist = tmp_path / "partner_plugin-2.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: partner-plugin\nVersion: 2.0.0\n")
    (dist / "entry_points.txt").write_text("[portal.plugins]\npartner = partner_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost()
    host.load_entry_points(None)
    assert host.plugins["partner"].source == "entrypoint"
    restricted = PluginHost()
    restricted.load_entry_points(("someone-else",))
    assert "partner" not in restricted.plugins
    sys.modules.pop("partner_plugin", None)


def test_every_hook_is_documented_with_an_example():
    for name in hookspecs.HOOK_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 80, f"{name} has no real docstring"
        assert "Example::" in doc, f"{name} has no example"
    from core.hookdocs import hooks_markdown

    docs = hooks_markdown()
    assert all(f"`{name}(" in docs for name in hookspecs.HOOK_NAMES)


def test_catch_all_plugin_implements_every_hook():
    implemented = {name for name in dir(everything) if name.startswith("portal_")}
    assert implemented == set(hookspecs.HOOK_NAMES), "tests/plugins/everything.py must implement every hook"


async def test_every_hook_is_reached(portal_app_factory, make_tenant):
    """Drives each hook through the path the core uses for it; fails when a new hook has no test."""
    from core.context import CurrentOrganization, system_context
    from core.contracts import MeterEvent, PlanOffer
    from core.migrate import app_modules

    everything.CALLS.clear()
    app = await portal_app_factory(everything)
    runtime = app.state.portal
    tenant = await make_tenant(plugins=["everything"])
    async with client_for(app, tenant.host) as client:
        await client.get("/login")
        refused = await login(client, f"sso-only@{tenant.slug}.example")
        assert refused.status_code == 403 and "single sign-on" in refused.text
        await login(client, tenant.email("member"))
        await client.get(f"/o/{tenant.org_slug}/")
        await client.get("/api/v1/everything/ping", headers={"Authorization": f"Bearer {everything.API_TOKEN}"})
    from core.tables import User

    await User.update({User.is_tenant_admin: True}).where(User.email == tenant.email("owner"))
    async with client_for(app, tenant.host) as admin:
        await login(admin, tenant.email("owner"))
        console = await admin.get("/admin/branding")
        assert console.status_code == 200 and "Everything admin" in console.text
    record = runtime.directory.lookup(tenant.host)
    org = CurrentOrganization(tenant.org_id, tenant.org_slug, "Org")
    ctx = system_context(runtime, record, organization=org)
    async with atomic():
        await emit(ctx, "everything.tested", target=Target("thing", "1", "Thing"))
    await runtime.plugins.call("portal_seed_demo", tenant=record, ctx=ctx, org=org)
    await runtime.plugins.call("portal_usage_metrics", tenant=record, ctx=ctx, org=org)
    assert await runtime.plugins.first("portal_plan_limits", tenant=record, ctx=ctx, org=org) == {"seats": 5}
    summaries = await runtime.plugins.first("portal_billing_summaries", tenant=record, ctx=ctx, orgs=[org])
    assert summaries[org.id].plan_name == "Basic"
    refusals = await runtime.plugins.call("portal_plan_change_allowed", tenant=record, ctx=ctx, org=org,
                                          current_plan=None, new_plan=PlanOffer("forbidden", "Forbidden"))
    assert ("everything", "Not this one.") in refusals
    meter = MeterEvent("api_calls", 3, datetime.now(UTC), "org:api_calls:1")
    assert await runtime.plugins.first("portal_report_metered_usage", tenant=record, ctx=ctx, org=org,
                                       events=[meter]) == 1
    runtime.plugins.call_build("portal_cli", group=Group("portal"))
    assert "everything.deliver" in runtime.outbox_handlers
    assert app_modules(host=runtime.plugins)[0] == "core.piccolo_app"
    await runtime.plugins.call("portal_shutdown", tenant=None, app=app)
    missing = set(hookspecs.HOOK_NAMES) - set(everything.CALLS)
    assert not missing, f"hooks never reached: {sorted(missing)}"
