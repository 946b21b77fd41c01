"""End to end with the real API keys plugin: a key with ``usage.write`` ingests; one without cannot."""

from __future__ import annotations

import pytest

from core.testing import client_for, refresh_tenants
from plugins.usage.tables import UsageEvent

from .conftest import USAGE_SETTINGS
from .helpers import ctx_for
from .test_ingest import event

apikeys = pytest.importorskip("plugins.apikeys.service")


async def issue(ctx, scopes):
    draft, errors = await apikeys.validate_draft(ctx, name="Meter", scopes=scopes, environment="live",
                                                 expiry="90", expires_on="")
    assert not errors, errors
    _row, plaintext = await apikeys.create_key(ctx, draft)
    return plaintext


async def test_real_api_key_ingests_for_its_organization(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["usage", "api-keys"], settings=USAGE_SETTINGS)
    await refresh_tenants(portal_app)
    ctx = ctx_for(portal_app, tenant)
    writer = await issue(ctx, ["usage.write", "usage.read"])
    reader = await issue(ctx, ["usage.read"])
    async with client_for(portal_app, tenant.host) as api:
        ok = await api.post("/api/v1/usage/events", json=event("real-1", 3),
                            headers={"Authorization": f"Bearer {writer}"})
        denied = await api.post("/api/v1/usage/events", json=event("real-2", 3),
                                headers={"Authorization": f"Bearer {reader}"})
        summary = await api.get("/api/v1/usage/summary", headers={"Authorization": f"Bearer {reader}"})
        anonymous = await api.post("/api/v1/usage/events", json=event("real-3", 3))
    assert ok.status_code == 200, ok.text
    assert denied.status_code == 403
    assert anonymous.status_code == 401
    assert {m["key"]: m["used"] for m in summary.json()["metrics"]}["api_calls"] == 3
    assert await UsageEvent.count().where(UsageEvent.organization == tenant.org_id) == 1
