"""Fixtures of the API keys tests: an app with a small "widgets" plugin that contributes scopes and API routes."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar import get

from core import hookimpl
from core.context import Ctx
from core.contracts import Permission, PluginInfo, PluginRoutes
from core.guards import requires
from core.testing import client_for, form_post, login, refresh_tenants

NEW_KEY = re.compile(r'data-testid="new-key" readonly value="([^"]+)"')
APP_PLUGINS = ("core.builtin", "plugins.apikeys")


@get("/", guards=[requires("widgets.read")])
async def list_widgets(ctx: Ctx) -> dict[str, Any]:
    """A partner's API route guarded by a scope."""
    assert ctx.organization is not None
    return {"organization": ctx.organization.slug, "widgets": []}


@get("/admin", guards=[requires("widgets.admin")])
async def widgets_admin(ctx: Ctx) -> dict[str, Any]:
    """A route needing a scope only owners hold."""
    return {"ok": True}


@get("/bench/ping")
async def public_ping() -> dict[str, str]:
    """Unauthenticated route."""
    return {"pong": "ok"}


class WidgetsPlugin:
    """A partner plugin: two permissions (= scopes) and API routes; records every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        return PluginInfo("widgets", "Widgets", "1.0.0")

    @hookimpl
    def portal_permissions(self) -> list[Permission]:
        return [Permission("widgets.read", "Read widgets", {"owner", "admin", "member"}),
                Permission("widgets.admin", "Administer widgets", {"owner"})]

    @hookimpl
    def portal_routes(self) -> PluginRoutes:
        return PluginRoutes(api=[list_widgets, widgets_admin])

    @hookimpl
    def portal_event(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture
def widgets() -> WidgetsPlugin:
    """The partner plugin (its ``events`` list records what the API keys plugin emitted)."""
    return WidgetsPlugin()


@pytest.fixture
async def app(portal_app_factory: Any, widgets: WidgetsPlugin) -> Any:
    """Core + API keys + widgets only, so other sections' work in progress cannot interfere."""
    return await portal_app_factory(widgets, builtin_plugins=APP_PLUGINS)


@pytest.fixture
def tenant_factory(make_tenant: Any, app: Any) -> Any:
    """``await tenant_factory(settings=...)``: a tenant with api-keys and widgets on, known to the app."""

    async def factory(plugins: list[str] | None = None, **kwargs: Any) -> Any:
        tenant = await make_tenant(plugins=["api-keys", "widgets"] if plugins is None else plugins, **kwargs)
        await refresh_tenants(app)
        return tenant

    return factory


async def signed_in(app: Any, tenant: Any, role: str = "owner") -> httpx.AsyncClient:
    """A client signed in as ``role`` of the tenant's organization."""
    client = client_for(app, tenant.host)
    response = await login(client, tenant.email(role))
    assert response.status_code == 302, response.text
    return client


async def create_key(client: httpx.AsyncClient, tenant: Any, *, name: str = "Production server",
                     scopes: tuple[str, ...] = ("widgets.read", "api_keys.read"), expiry: str = "never",
                     environment: str = "live", expires_on: str = "") -> tuple[httpx.Response, str | None]:
    """Create a key through the real form; returns the response and the plaintext shown once."""
    base = f"/o/{tenant.org_slug}/api-keys"
    response = await form_post(client, base, {"name": name, "scopes": list(scopes), "expiry": expiry,
                                              "environment": environment, "expires_on": expires_on},
                               token_from=f"{base}/new")
    match = NEW_KEY.search(response.text)
    return response, match.group(1) if match else None


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}
