"""Shared steps of the SSO tests: a tenant with the plugin, domain verification through the UI, connections."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from core.tables import UserSession
from core.testing import client_for, form_post, login, refresh_tenants
from plugins.sso.tables import SsoConnection, SsoDomain


async def sso_setup(portal_app_factory: Any, make_tenant: Any, recorder: Any, tiny_dns: Any) -> tuple[Any, Any]:
    """An app with the event recorder and a tenant with SSO on, using the local DNS server."""
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["sso", "sso-events"], settings={"sso_dns_resolver": tiny_dns.address})
    await refresh_tenants(app)
    return app, tenant


async def admin_client(app: Any, tenant: Any, role: str = "owner") -> httpx.AsyncClient:
    """A signed-in client of the tenant (owner by default)."""
    client = client_for(app, tenant.host)
    response = await login(client, tenant.email(role))
    assert response.status_code == 302
    return client


async def verify_domain_via_ui(client: httpx.AsyncClient, tenant: Any, tiny_dns: Any, domain: str) -> None:
    """Claim the domain on the settings page, publish its TXT record, press "Verify now"."""
    page = f"/o/{tenant.org_slug}/sso"
    response = await form_post(client, f"{page}/domains", {"domain": domain}, token_from=page)
    assert response.status_code == 302, response.text
    row = await SsoDomain.select().where(SsoDomain.organization == tenant.org_id, SsoDomain.domain == domain).first()
    tiny_dns.records[f"_portal-verification.{domain}"] = [f"portal-verification={row['token']}"]
    response = await form_post(client, f"{page}/domains/{row['id']}/verify", {}, token_from=page)
    assert response.status_code == 200, response.text
    assert f"{domain} is verified" in response.text


async def create_connection(client: httpx.AsyncClient, tenant: Any, protocol: str) -> dict[str, Any]:
    """Press "Set up OIDC/SAML" and return the new connection row."""
    page = f"/o/{tenant.org_slug}/sso"
    response = await form_post(client, f"{page}/connection", {"protocol": protocol}, token_from=page)
    assert response.status_code == 302, response.text
    return await SsoConnection.select().where(SsoConnection.organization == tenant.org_id).first()


async def enable(client: httpx.AsyncClient, tenant: Any, **fields: str) -> httpx.Response:
    """Switch SSO on with a policy (optional by default)."""
    page = f"/o/{tenant.org_slug}/sso"
    data = {"enabled": "on", "policy": "optional", "default_role": "member", "group_roles": "", **fields}
    return await form_post(client, f"{page}/policy", data, token_from=page)


async def sessions_of(email: str, tenant_id: Any) -> int:
    """Live sessions of a user (by email) on the tenant."""
    return await UserSession.count().where(UserSession.tenant == tenant_id, UserSession.user.email == email,
                                           UserSession.revoked_at.is_null())


def corp_domain() -> str:
    """A fresh company domain per test."""
    return f"corp-{secrets.token_hex(3)}.example"
