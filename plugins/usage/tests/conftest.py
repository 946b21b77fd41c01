"""Fixtures of the usage tests: a tenant with metrics, a stand-in API authenticator and plan-limits plugin.

The stand-ins implement the same hooks the API keys and billing plugins implement
(``portal_authenticate_api``, ``portal_plan_limits``), so these tests do not depend on
either being finished; ``test_apikeys_e2e`` uses the real API keys plugin when it is there.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar.exceptions import NotAuthorizedException

from core import hookimpl
from core.context import Actor, ApiPrincipal, CurrentOrganization
from core.contracts import BillingSummary, MeterEvent, PluginInfo, UsageMetric
from core.testing import client_for, refresh_tenants

USAGE_SETTINGS: dict[str, Any] = {"usage": {
    "timezone": "Europe/Berlin", "backfill_days": 35,
    "max_future_minutes": 5, "warning_threshold": 80,
    "metrics": {"api_calls": {"label": "API calls", "unit": "calls"},
                "transfer_gb": {"label": "Data transfer", "unit": "GB", "threshold": 90}},
}}
PRO = BillingSummary("pro", "Pro", "active", "EUR", Decimal("49"), "month", Decimal("49"),
                     {"api_calls": Decimal("0.01"), "transfer_gb": Decimal("0.5"), "seats": Decimal("10")})
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
    """Plan limits, billing summaries and a metered-usage recorder per organization id (billing's hooks)."""

    def __init__(self) -> None:
        self.limits: dict[uuid.UUID, dict[str, float]] = {}
        self.summaries: dict[uuid.UUID, BillingSummary] = {}
        self.metered: dict[uuid.UUID, list[MeterEvent]] = {}
        self.reported: list[tuple[uuid.UUID, MeterEvent]] = []
        self.fail_after_send = 0

    @hookimpl
    def portal_billing_summaries(self, ctx: Any, orgs: list[Any]) -> dict[uuid.UUID, BillingSummary]:
        return {org.id: self.summaries[org.id] for org in orgs if org.id in self.summaries}

    @hookimpl
    async def portal_report_metered_usage(self, ctx: Any, org: Any, events: list[MeterEvent]) -> int | None:
        """Records what a provider would receive; ``fail_after_send`` simulates a crash after the send."""
        if org.id not in self.metered:
            return None
        assert ctx.tenant.id is not None and all(isinstance(e, MeterEvent) for e in events)
        self.reported.extend((org.id, e) for e in events)
        seen = {e.identifier for e in self.metered[org.id]}
        self.metered[org.id].extend(e for e in events if e.identifier not in seen)  # the provider dedupes
        if self.fail_after_send:
            self.fail_after_send -= 1
            raise ConnectionError("connection lost after the provider accepted the events")
        return len(events)

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
