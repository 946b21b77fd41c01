"""Fixtures of the billing tests: a tenant selling three plans, with its organization seeded."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.testing import free_port

PLANS = [
    {"id": "starter", "name": "Starter", "price": 1900, "currency": "EUR", "interval": "month",
     "limits": {"seats": 5, "api_calls": 10000}, "features": ["Email support"], "stripe_price_id": "starter"},
    {"id": "team", "name": "Team", "price": 4900, "currency": "EUR", "interval": "month",
     "limits": {"seats": 20, "api_calls": 100000}, "features": ["Audit log"], "stripe_price_id": "team"},
    {"id": "business", "name": "Business", "price": 14900, "currency": "EUR", "interval": "month",
     "limits": {"seats": -1, "api_calls": 1000000}, "features": ["SSO"], "stripe_price_id": "business"},
]


def billing_settings(roles: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Tenant settings with a billing section (EUR, 19 % VAT) and, optionally, role overrides."""
    return {"billing": {"provider": "local", "currency": "EUR", "locale": "en_IE", "tax_rate": 19,
                        "tax_label": "VAT", "plans": PLANS, **overrides}, "roles": roles or {}}


@pytest.fixture
async def billing_app(portal_app_factory: Any) -> Any:
    """An app rendering PDFs in a thread (no worker processes per test app)."""
    return await portal_app_factory(extra={"billing_pdf_workers": "0"})


@pytest.fixture
def billing_tenant(make_tenant: Any, billing_app: Any) -> Any:
    """``await billing_tenant(slug_profile=..., **billing overrides)``: a tenant whose organization is seeded
    with the demo profile of ``slug_profile`` (e.g. ``anvil-works`` is past due)."""
    from core.context import CurrentOrganization, system_context
    from core.tables import Organization
    from core.testing import refresh_tenants
    from plugins.billing.seed import PROFILES, seed_organization

    async def factory(profile: str | None = "rocket-labs", plugins: list[str] | None = None, **overrides: Any) -> Any:
        tenant = await make_tenant(plugins=plugins or ["billing"], settings=billing_settings(**overrides),
                                   branding={"legal_name": "Test Cloud GmbH", "legal_address": "Teststr. 1, Berlin",
                                             "tax_id": "DE136695976", "product_name": "Test Cloud"})
        await refresh_tenants(billing_app)
        runtime = billing_app.state.portal
        record = runtime.directory.get(tenant.id)
        org = await Organization.select().where(Organization.id == tenant.org_id).first()
        if profile is not None:
            PROFILES.setdefault(org["slug"], PROFILES[profile])
            ctx = system_context(runtime, record, organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
            await seed_organization(ctx, org)
        return tenant

    return factory


def serve_localstripe(script: str) -> Iterator[str]:
    """Run ``script`` (localstripe, or it with the fakes on top) from this folder on a free port until the
    generator closes; yields its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name(script)), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/customers", auth=("sk_test_x", ""), timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(5)
