"""The operator view on the platform host: operator accounts, tenants and domains, suspend / resume with events."""

from __future__ import annotations

import time
import uuid

import pyotp
import pytest

from core.console.operator import OperatorError, create_operator, update_operator
from core.console.tables import DomainCheck
from core.db import utcnow
from core.tables import Tenant, TenantDomain
from core.testing import client_for, csrf_token, form_post, login
from tests.console.conftest import make_tenant_admin

PLATFORM = "ops.platform.test"


async def _operator(app):
    email = f"op-{uuid.uuid4().hex[:8]}@platform.example"
    return await create_operator(app.state.portal, email.upper(), "Olga Operator")


def code(creds, steps: int = 0) -> str:
    """The authenticator code ``steps`` 30-second steps from now (each login needs a fresh one)."""
    return pyotp.TOTP(creds.totp_secret).at(time.time() + 30 * steps)


async def _sign_in(client, email: str, password: str, totp: str = "000000"):
    return await form_post(client, "/operator/login", {"email": email, "password": password, "code": totp},
                           token_from="/operator/login")


async def test_operator_lists_tenants_and_domains_and_suspends(portal_app_factory, make_tenant, recorder):
    app = await portal_app_factory(recorder, extra={"platform_host": PLATFORM})
    tenant = await make_tenant(plugins=["recorder"], branding={"product_name": "Ops Brand"})
    pending, checked = f"new.{tenant.slug}.test", f"shop.{tenant.slug}.test"
    for host in (pending, checked):
        await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant.id, hostname=host, is_primary=False,
                                               verified=False, created_at=utcnow()))
    await DomainCheck.insert(DomainCheck(id=uuid.uuid4(), tenant=tenant.id, hostname=checked, checked_at=utcnow(),
                                         ownership=False, routing=None, detail=""))
    creds = await _operator(app)
    email = creds.email
    async with client_for(app, PLATFORM) as client:
        anonymous = await client.get("/operator")
        assert anonymous.status_code == 302 and anonymous.headers["location"] == "/operator/login"
        wrong = await _sign_in(client, email, "not-the-password", code(creds))
        assert wrong.status_code == 400 and "Email, password or authenticator code is wrong" in wrong.text
        no_code = await _sign_in(client, email, creds.password, "")
        assert no_code.status_code == 400
        response = await _sign_in(client, email, creds.password, code(creds))
        assert response.status_code == 302 and response.headers["location"] == "/operator"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/operator" in cookie

        page = await client.get("/operator", params={"q": tenant.slug.upper()})  # the session DB has many
        assert page.status_code == 200 and "Olga Operator" in page.text
        row = page.text.split(f'data-testid="tenant-{tenant.slug}"')[1].split("</tr>")[0]
        assert tenant.host in row and "active" in row and "2 pending" in row and "recorder" in row
        assert "<td>1</td>" in row  # one organization

        detail = await client.get(f"/operator/tenants/{tenant.slug}")
        assert detail.status_code == 200
        live = detail.text.split(f'data-testid="domain-{tenant.host}"')[1].split("</tr>")[0]
        assert "active" in live and "primary" in live and "certificate on demand" in live
        waiting = detail.text.split(f'data-testid="domain-{checked}"')[1].split("</tr>")[0]
        assert "pending" in waiting and "TXT missing" in waiting and "refused" in waiting
        assert "not checked yet" in detail.text.split(f'data-testid="domain-{pending}"')[1].split("</tr>")[0]

        # Unsafe actions need the CSRF token.
        forged = await client.post(f"/operator/tenants/{tenant.slug}/suspend")
        assert forged.status_code == 403
        response = await form_post(client, f"/operator/tenants/{tenant.slug}/suspend", {},
                                   token_from=f"/operator/tenants/{tenant.slug}")
        assert response.status_code == 302
        assert (await Tenant.select(Tenant.status).where(Tenant.id == tenant.id).first())["status"] == "suspended"
        async with client_for(app, tenant.host) as visitor:
            assert (await visitor.get("/login")).status_code == 404
        suspended = (await client.get(f"/operator/tenants/{tenant.slug}")).text
        assert 'data-testid="tenant-status">suspended' in suspended
        assert "verified" in suspended.split(f'data-testid="domain-{tenant.host}"')[1].split("</tr>")[0]
        response = await form_post(client, f"/operator/tenants/{tenant.slug}/resume", {},
                                   token_from=f"/operator/tenants/{tenant.slug}")
        assert response.status_code == 302
        async with client_for(app, tenant.host) as visitor:
            assert (await visitor.get("/login")).status_code == 200

        [off] = recorder.of("operator.tenant.suspended")
        [on] = recorder.of("operator.tenant.resumed")
        assert off.actor.type == "operator" and off.actor.display == email and off.tenant_id == tenant.id
        assert on.before == {"status": "suspended"} and on.after == {"status": "active"}

        # Signing out ends the session on the server, not just in this browser.
        token = client.cookies.get("portal_operator")
        assert (await form_post(client, "/operator/logout", {}, token_from="/operator")).status_code == 302
        async with client_for(app, PLATFORM) as replay:
            replay.cookies.set("portal_operator", token, path="/operator")
            assert (await replay.get("/operator")).status_code == 302


async def test_operator_view_exists_only_on_the_platform_host(portal_app_factory, make_tenant):
    app = await portal_app_factory(extra={"platform_host": PLATFORM})
    tenant = await make_tenant()
    async with client_for(app, "unknown.example") as stranger:
        response = await stranger.get("/operator/login")
        assert response.status_code == 404 and "not connected to a portal" in response.text
    async with client_for(app, tenant.host) as client:
        assert (await client.get("/operator/login")).status_code == 404
        await make_tenant_admin(tenant)
        assert (await login(client, tenant.email("admin"))).status_code == 302
        assert (await client.get("/operator")).status_code == 404
    # The tenant admin's password is no operator password, and the platform host has no tenant login.
    async with client_for(app, PLATFORM) as client:
        response = await _sign_in(client, tenant.email("admin"), "correct-horse-battery")
        assert response.status_code == 400
        assert (await client.get("/login")).status_code == 404
    unset = await portal_app_factory()
    async with client_for(unset, PLATFORM) as client:
        assert (await client.get("/operator/login")).status_code == 404


async def test_disabled_operator_second_factor_and_throttle(portal_app_factory):
    app = await portal_app_factory(extra={"platform_host": PLATFORM})
    creds = await _operator(app)
    email, password = creds.email, creds.password
    async with client_for(app, PLATFORM) as client:
        assert (await _sign_in(client, email, password, "123")).status_code == 400
        assert (await _sign_in(client, email, password, code(creds))).status_code == 302
        # A code is accepted once: the same one (or an older one) again is a replay.
        async with client_for(app, PLATFORM) as thief:
            replay = await _sign_in(thief, email, password, code(creds))
            assert replay.status_code == 400 and "already used" in replay.text
        await update_operator(app.state.portal, email, disabled=True)
        assert (await client.get("/operator")).status_code == 302  # session ended
        assert (await _sign_in(client, email, password, code(creds, 1))).status_code == 400
        fresh = await update_operator(app.state.portal, email, disabled=False, new_password=True)
        assert (await _sign_in(client, email, password, code(creds, 1))).status_code == 400
        assert (await _sign_in(client, email, fresh.password, code(creds, 1))).status_code == 302
        # A new authenticator key (lost phone): the old key's codes stop working.
        rekeyed = await update_operator(app.state.portal, email, new_totp=True)
        assert (await _sign_in(client, email, fresh.password, code(creds, 1))).status_code == 400
        assert (await _sign_in(client, email, fresh.password, code(rekeyed, 1))).status_code == 302
        assert rekeyed.authenticator_uri().startswith("otpauth://totp/")
    async with client_for(app, PLATFORM, client_ip="10.9.8.7") as client:
        token = await csrf_token(client, "/operator/login")
        codes = [(await client.post("/operator/login", data={"_csrf_token": token, "email": f"g{i}@x.example",
                                                             "password": "guess"})).status_code
                 for i in range(11)]
        assert codes[:10] == [400] * 10 and codes[10] == 429
    with pytest.raises(OperatorError, match="already exists"):
        await create_operator(app.state.portal, email)
    with pytest.raises(OperatorError, match="no operator"):
        await update_operator(app.state.portal, "nobody@platform.example", disabled=True)
