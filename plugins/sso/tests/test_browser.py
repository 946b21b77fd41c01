"""In Chromium: "Continue with SSO" through npm oidc-provider, and through the independent npm saml-idp.

The portal is served by uvicorn on a ``*.localhost`` host (Chromium treats it as a secure
context, so the SAML binding cookie, ``SameSite=None; Secure``, works over plain http).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.tables import UserSession
from core.testing import CSRF_INPUT, PASSWORD, artifact, free_port, live_server, refresh_tenants
from plugins.sso.certs import self_signed
from plugins.sso.tables import SsoConnection, SsoDomain
from plugins.sso.tests.helpers import corp_domain

pytestmark = pytest.mark.browser


@pytest.fixture
async def chromium(portal_browser: Any) -> Any:
    """Headless Debian Chromium (``core.testing``): ``*.localhost`` and ``*.test`` resolve to the loopback."""
    return portal_browser


@pytest.fixture
async def site(portal_app_factory, make_tenant, recorder, tiny_dns) -> AsyncIterator[dict[str, Any]]:
    """A tenant with SSO on a ``.localhost`` host, served by uvicorn on a free port."""
    app = await portal_app_factory(recorder)
    host = f"sso-{secrets.token_hex(3)}.localhost"
    tenant = await make_tenant(plugins=["sso", "sso-events"], settings={"sso_dns_resolver": tiny_dns.address},
                               extra_hosts=[host])
    await refresh_tenants(app)
    async with live_server(app) as port:
        origin = f"http://{host}:{port}"
        admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=origin)
        token = CSRF_INPUT.search((await admin.get("/login")).text).group(1)  # type: ignore[union-attr]
        response = await admin.post("/login", data={"_csrf_token": token, "email": tenant.email("owner"),
                                                    "password": PASSWORD})
        assert response.status_code == 302
        yield {"app": app, "tenant": tenant, "origin": origin, "admin": admin, "dns": tiny_dns, "recorder": recorder}
        await admin.aclose()


async def post(site: dict[str, Any], path: str, data: dict[str, Any]) -> httpx.Response:
    admin = site["admin"]
    page = f"/o/{site['tenant'].org_slug}/sso"
    token = CSRF_INPUT.search((await admin.get(page)).text).group(1)  # type: ignore[union-attr]
    return await admin.post(path, data={"_csrf_token": token, **data})


async def prepare(site: dict[str, Any], protocol: str) -> tuple[str, dict[str, Any]]:
    """Verified domain + a new connection (through the settings page's forms)."""
    tenant, page = site["tenant"], f"/o/{site['tenant'].org_slug}/sso"
    domain = corp_domain()
    assert (await post(site, f"{page}/domains", {"domain": domain})).status_code == 302
    row = await SsoDomain.select().where(SsoDomain.organization == tenant.org_id).first()
    site["dns"].records[f"_portal-verification.{domain}"] = [f"portal-verification={row['token']}"]
    assert (await post(site, f"{page}/domains/{row['id']}/verify", {})).status_code == 200
    assert (await post(site, f"{page}/connection", {"protocol": protocol})).status_code == 302
    connection = await SsoConnection.select().where(SsoConnection.organization == tenant.org_id).first()
    return domain, connection


async def sign_in_through_ui(page: Any, origin: str, email: str) -> None:
    await page.goto(f"{origin}/login")
    await page.click("text=Continue with SSO")
    await page.fill("#email", email)
    await page.click("button[type=submit]")


async def test_oidc_sign_in_in_a_browser(site, chromium, oidc_idp):
    tenant, origin = site["tenant"], site["origin"]
    domain, connection = await prepare(site, "oidc")
    client_id, secret = await oidc_idp.register_client(f"{origin}/sso/oidc/{connection['id']}/callback")
    page_path = f"/o/{tenant.org_slug}/sso"
    response = await post(site, f"{page_path}/oidc", {"oidc_issuer": oidc_idp.issuer, "oidc_client_id": client_id,
                                                      "oidc_client_secret": secret, "oidc_algorithms": "RS256",
                                                      "oidc_scopes": "openid email profile"})
    assert response.status_code == 302, response.text
    assert (await post(site, f"{page_path}/policy", {"enabled": "on", "policy": "required",
                                                     "default_role": "member"})).status_code == 302
    context = await chromium.new_context()
    page = await context.new_page()
    email = f"ada@{domain}"
    await sign_in_through_ui(page, origin, email)
    await page.wait_for_url(f"{origin}/o/{tenant.org_slug}/", timeout=20000)
    assert await page.locator("h1").first.text_content() == f"Org {tenant.slug}"
    assert await UserSession.count().where(UserSession.tenant == tenant.id, UserSession.auth_method == "oidc") == 1
    # the same person cannot fall back to a password: the domain requires SSO
    await page.context.clear_cookies()
    await page.goto(f"{origin}/login")
    await page.fill("#email", email)
    await page.fill("#password", "not-relevant-here")
    await page.click("form[action='/login'] button[type=submit]")
    assert "requires single sign-on" in await page.content()
    # the owner looks at the configuration page
    owner = await chromium.new_context()
    await owner.add_cookies([{"name": c.name, "value": c.value, "url": origin}
                             for c in site["admin"].cookies.jar])
    settings = await owner.new_page()
    await settings.set_viewport_size({"width": 1280, "height": 1600})
    await settings.goto(f"{origin}{page_path}")
    assert await settings.locator("text=Verified email domains").count() == 1
    await settings.screenshot(path=artifact("sso-settings-oidc.png"), full_page=True)
    await context.close()
    await owner.close()


@pytest.fixture
def saml_idp_process(sso_node_modules: Path) -> Any:
    """Starts npm saml-idp for a given ACS URL and audience (it needs both at start)."""
    started: list[subprocess.Popen[str]] = []

    async def start(acs_url: str, audience: str) -> str:
        folder = Path(tempfile.mkdtemp(prefix="portal-saml-idp-"))
        key, cert = self_signed("saml-idp test")
        (folder / "idp.key").write_text(key)
        (folder / "idp.crt").write_text(cert)
        port = free_port()
        process = subprocess.Popen(
            ["node", str(sso_node_modules / "saml-idp" / "app.js"), "--host", "127.0.0.1", "--port", str(port),
             "--acsUrl", acs_url, "--audience", audience, "--issuer", "urn:portal-tests:saml-idp",
             "--cert", str(folder / "idp.crt"), "--key", str(folder / "idp.key")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{base}/metadata")).status_code == 200:
                        return base
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("saml-idp did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


async def test_saml_sign_in_with_npm_saml_idp_in_a_browser(site, chromium, saml_idp_process):
    tenant, origin = site["tenant"], site["origin"]
    domain, connection = await prepare(site, "saml")
    entity_id = f"{origin}/sso/saml/{connection['id']}/metadata"
    idp_base = await saml_idp_process(f"{origin}/sso/saml/{connection['id']}/acs", entity_id)
    page_path = f"/o/{tenant.org_slug}/sso"
    response = await post(site, f"{page_path}/saml", {"saml_metadata_url": f"{idp_base}/metadata",
                                                      "saml_email_attribute": "email",
                                                      "saml_name_attribute": "displayName"})
    assert response.status_code == 302, response.text
    assert (await post(site, f"{page_path}/policy", {"enabled": "on", "policy": "optional",
                                                     "default_role": "viewer"})).status_code == 302
    context = await chromium.new_context()
    page = await context.new_page()
    email = f"grace@{domain}"
    await sign_in_through_ui(page, origin, email)
    await page.wait_for_selector("#userName", timeout=20000)  # saml-idp's sign-in page
    await page.fill("#userName", email)
    await page.fill("#email", email)
    await page.fill("#displayName", "Grace Hopper")
    await page.click("form.form-profile button[type=submit]")
    await page.wait_for_url(f"{origin}/o/{tenant.org_slug}/", timeout=20000)
    rows = await UserSession.select(UserSession.auth_method, UserSession.user.email.as_alias("email")).where(
        UserSession.tenant == tenant.id, UserSession.auth_method == "saml")
    assert [r["email"] for r in rows] == [email]
    assert [e.type for e in site["recorder"].of("sso.login.")] == ["sso.login.succeeded"]
    await context.close()
