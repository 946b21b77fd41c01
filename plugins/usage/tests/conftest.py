"""Fixtures of the usage tests: a tenant with metrics, a stand-in API authenticator and plan-limits plugin.

The stand-ins implement the same hooks the API keys and billing plugins implement
(``portal_authenticate_api``, ``portal_plan_limits``), so these tests do not depend on
either being finished; ``test_apikeys_e2e`` uses the real API keys plugin when it is there.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar.exceptions import NotAuthorizedException

from core import hookimpl
from core.context import Actor, ApiPrincipal, CurrentOrganization
from core.contracts import PluginInfo, UsageMetric
from core.testing import client_for, refresh_tenants

USAGE_SETTINGS: dict[str, Any] = {"usage": {
    "timezone": "Europe/Berlin", "currency": "EUR", "plan_price": 49.0, "backfill_days": 35,
    "max_future_minutes": 5, "warning_threshold": 80,
    "metrics": {"api_calls": {"label": "API calls", "unit": "calls"},
                "transfer_gb": {"label": "Data transfer", "unit": "GB", "threshold": 90}},
    "unit_prices": {"api_calls": 0.01, "transfer_gb": 0.5, "seats": 10.0},
}}
TEST_PLUGINS = ["usage", "usage-test-auth", "usage-test-limits", "usage-test-seats"]


class FakeApiKeys:
    """Maps bearer tokens to principals: ``issue(tenant, org_id, slug, perms)`` returns a token."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[uuid.UUID, ApiPrincipal]] = {}

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        return PluginInfo("usage-test-auth", "Test API auth", "1.0")

    @hookimpl
    def portal_authenticate_api(self, ctx: Any, authorization: str) -> ApiPrincipal | None:
        token = authorization.removeprefix("Bearer ").strip()
        found = self.tokens.get(token)
        if found is None or found[0] != ctx.tenant.id:
            raise NotAuthorizedException("This API key is not valid.")
        return found[1]

    def issue(self, tenant_id: uuid.UUID, org_id: uuid.UUID, org_slug: str,
              permissions: tuple[str, ...] = ("usage.write", "usage.read")) -> str:
        token = "test_" + secrets.token_hex(8)
        principal = ApiPrincipal(Actor("api_key", token[:12], "Test key"),
                                 CurrentOrganization(org_id, org_slug, org_slug), frozenset(permissions))
        self.tokens[token] = (tenant_id, principal)
        return token


class FakeBilling:
    """Plan limits per organization id (what the billing plugin answers)."""

    def __init__(self) -> None:
        self.limits: dict[uuid.UUID, dict[str, float]] = {}

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        return PluginInfo("usage-test-limits", "Test plan limits", "1.0")

    @hookimpl
    def portal_plan_limits(self, ctx: Any, org: Any) -> dict[str, float] | None:
        return self.limits.get(org.id)


class FakeTeam:
    """Reports seats like the team plugin: a level, not an accumulating count."""

    def __init__(self) -> None:
        self.seats: dict[uuid.UUID, float] = {}

    @hookimpl
    def portal_plugin(self) -> PluginInfo:
        return PluginInfo("usage-test-seats", "Test team", "1.0")

    @hookimpl
    def portal_usage_metrics(self, ctx: Any, org: Any) -> list[UsageMetric]:
        if org.id not in self.seats:
            return []
        return [UsageMetric("seats", "Seats", used=self.seats[org.id])]


@dataclass
class UsageEnv:
    """An app with the stand-ins, and helpers to make tenants and API clients."""

    app: Any
    keys: FakeApiKeys
    billing: FakeBilling
    team: FakeTeam
    make_tenant: Any
    tenants: list[Any] = field(default_factory=list)

    async def tenant(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        tenant = await self.make_tenant(plugins=TEST_PLUGINS, settings=settings or USAGE_SETTINGS, **kwargs)
        await refresh_tenants(self.app)
        return tenant

    def api(self, tenant: Any, token: str | None = None) -> httpx.AsyncClient:
        client = client_for(self.app, tenant.host)
        if token is None:
            token = self.keys.issue(tenant.id, tenant.org_id, tenant.org_slug)
        client.headers["Authorization"] = f"Bearer {token}"
        return client


@pytest.fixture
async def usage_env(portal_app_factory: Any, make_tenant: Any) -> UsageEnv:
    keys, billing, team = FakeApiKeys(), FakeBilling(), FakeTeam()
    app = await portal_app_factory(keys, billing, team)
    return UsageEnv(app, keys, billing, team, make_tenant)
