"""OIDC sign-in against a real npm oidc-provider: the happy path with JIT, and every rejection.

Crafted ID tokens reach the portal through the real flow: the IdP script swaps the ID token of
its next token response for one the test forged (with the IdP's real key where that matters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from core.tables import Membership, User, UserSession
from core.testing import client_for, form_post, login, refresh_tenants
from plugins.sso import oidc
from plugins.sso.tables import SsoConnection, SsoPending
from plugins.sso.tests.conftest import Browser
from plugins.sso.tests.helpers import (
    admin_client,
    corp_domain,
    create_connection,
    enable,
    sessions_of,
    sso_setup,
    verify_domain_via_ui,
)


@dataclass
class OidcOrg:
    """A tenant whose organization signs in through the test IdP."""

    app: Any
    tenant: Any
    domain: str
    connection: dict[str, Any]
    client_id: str
    client_secret: str
    idp: Any
    recorder: Any

    def browser(self, idp_client: httpx.AsyncClient) -> Browser:
        return Browser(client_for(self.app, self.tenant.host), idp_client, self.tenant.host)


async def configure_oidc(app: Any, tenant: Any, idp: Any, tiny_dns: Any, recorder: Any, **policy: str) -> OidcOrg:
    """Everything an admin does on /o/{org}/sso: domain, connection, client registration, switch on."""
    owner = await admin_client(app, tenant)
    domain = corp_domain()
    await verify_domain_via_ui(owner, tenant, tiny_dns, domain)
    connection = await create_connection(owner, tenant, "oidc")
    client_id, secret = await idp.register_client(f"http://{tenant.host}/sso/oidc/{connection['id']}/callback")
    page = f"/o/{tenant.org_slug}/sso"
    response = await form_post(owner, f"{page}/oidc", {
        "oidc_issuer": idp.issuer, "oidc_client_id": client_id, "oidc_client_secret": secret,
        "oidc_scopes": "openid email profile groups", "oidc_algorithms": "RS256"}, token_from=page)
    assert response.status_code == 302, response.text
    response = await enable(owner, tenant, **policy)
    assert response.status_code == 302, response.text
    await owner.aclose()
    row = await SsoConnection.select().where(SsoConnection.id == connection["id"]).first()
    return OidcOrg(app, tenant, domain, row, client_id, secret, idp, recorder)


@pytest.fixture
async def org(portal_app_factory, make_tenant, recorder, tiny_dns, oidc_idp) -> OidcOrg:
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    return await configure_oidc(app, tenant, oidc_idp, tiny_dns, recorder,
                                group_roles="it-admins = admin\nfinance = billing")


async def start_sso(browser: Browser, email: str) -> httpx.Response:
    """The login page's "Continue with SSO", then the email form; returns the redirect to the IdP."""
    login_page = await browser.portal.get("/login")
    assert 'href="/sso/start"' in login_page.text and "Continue with SSO" in login_page.text
    response = await form_post(browser.portal, "/sso/start", {"email": email}, token_from="/sso/start")
    assert response.status_code == 302, response.text
    return response


async def sign_in(org: OidcOrg, idp_client: httpx.AsyncClient, email: str) -> tuple[Browser, httpx.Response]:
    browser = org.browser(idp_client)
    response = await start_sso(browser, email)
    return browser, await browser.follow(response)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def latest_nonce(connection_id: Any) -> str:
    row = await SsoPending.select().where(SsoPending.connection == connection_id).order_by(
        SsoPending.created_at, ascending=False).first()
    return row["nonce"]


def claims_for(org: OidcOrg, email: str, nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": org.idp.issuer, "aud": org.client_id, "sub": email, "email": email, "email_verified": True,
              "iat": now, "exp": now + 300, "nonce": nonce, "azp": org.client_id}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# -- the happy path ----------------------------------------------------------------------------------------------

async def test_sign_in_creates_user_and_lands_on_overview(org: OidcOrg, idp_client):
    email = f"Jane.Doe@{org.domain}"
    browser, page = await sign_in(org, idp_client, email)
    assert page.status_code == 200, page.text
    assert str(page.request.url).endswith(f"/o/{org.tenant.org_slug}/")
    user = await User.select().where(User.tenant == org.tenant.id, User.email == email.lower()).first()
    assert user is not None and user["password_hash"] is None and user["name"] == "jane doe"
    membership = await Membership.select().where(Membership.user == user["id"]).first()
    assert membership["organization"] == org.tenant.org_id and membership["role"] == "member"
    session = await UserSession.select().where(UserSession.user == user["id"]).first()
    assert session["auth_method"] == "oidc"
    types = [e.type for e in org.recorder.of("sso.", org.tenant.id)]
    assert "sso.user.provisioned" in types and "sso.login.succeeded" in types
    assert not org.recorder.of("sso.login.failed")
    # a second sign-in finds the same user
    _, page = await sign_in(org, httpx.AsyncClient(), email)
    assert page.status_code == 200
    assert await User.count().where(User.tenant == org.tenant.id, User.email == email.lower()) == 1
    assert await sessions_of(email.lower(), org.tenant.id) == 2


async def test_group_mapping_grants_the_mapped_role(org: OidcOrg, idp_client):
    email = f"ops@{org.domain}"
    await org.idp.control("/test/account", {"email": email, "groups": ["staff", "it-admins"], "name": "Ops Person"})
    browser, page = await sign_in(org, idp_client, email)
    assert page.status_code == 200
    row = await Membership.select(Membership.role).where(Membership.user.email == email,
                                                         Membership.tenant == org.tenant.id).first()
    assert row["role"] == "admin"
    settings = await browser.portal.get(f"/o/{org.tenant.org_slug}/sso")
    assert settings.status_code == 200  # admins may configure SSO


async def test_required_policy_refuses_password_but_owner_keeps_it(portal_app_factory, make_tenant, recorder,
                                                                  tiny_dns, oidc_idp, idp_client):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    org = await configure_oidc(app, tenant, oidc_idp, tiny_dns, recorder, policy="required")
    email = f"worker@{org.domain}"
    await sign_in(org, idp_client, email)
    plain = client_for(app, tenant.host)
    response = await login(plain, email, "whatever-password")
    assert response.status_code == 403
    assert "requires single sign-on" in response.text and "Continue with SSO" in response.text
    # the break-glass owner: an owner of the organization in the verified domain keeps password sign-in
    await Membership.update({Membership.role: "owner"}).where(Membership.user.email == email)
    from core.context import system_context
    from plugins.sso.service import password_refusal

    ctx = system_context(app.state.portal, app.state.portal.directory.lookup(tenant.host))
    assert await password_refusal(ctx, email) is None
    assert await password_refusal(ctx, f"someone-else@{org.domain}") is not None


async def test_test_connection_signs_nobody_in(org: OidcOrg, idp_client):
    owner = await admin_client(org.app, org.tenant)
    page = f"/o/{org.tenant.org_slug}/sso"
    response = await form_post(owner, f"{page}/test", {"email": f"tester@{org.domain}"}, token_from=page)
    assert response.status_code == 302
    browser = Browser(owner, idp_client, org.tenant.host)
    page_response = await browser.follow(response)
    assert page_response.status_code == 200
    assert "The test sign-in worked." in page_response.text and "Signed in as" in page_response.text
    assert org.recorder.of("sso.connection.tested")[-1].outcome == "success"
    assert not org.recorder.of("sso.login.succeeded")


async def test_settings_page_needs_sso_manage(org: OidcOrg):
    member = await admin_client(org.app, org.tenant, "member")
    assert (await member.get(f"/o/{org.tenant.org_slug}/sso")).status_code == 403
    owner = await admin_client(org.app, org.tenant)
    page = await owner.get(f"/o/{org.tenant.org_slug}/sso")
    assert page.status_code == 200 and org.domain in page.text and "Verified" in page.text
    assert org.client_secret not in page.text  # secrets never come back to the browser
    stored = await SsoConnection.select(SsoConnection.oidc_client_secret).where(
        SsoConnection.id == org.connection["id"]).first()
    assert org.client_secret not in stored["oidc_client_secret"]
    changes = [e for e in org.recorder.of("sso.connection.updated") if "oidc_client_secret_set" in (e.after or {})]
    assert changes and all(org.client_secret not in json.dumps(e.after) for e in changes)


# -- rejections: each leaves no session and exactly one failure event -------------------------------------------

async def assert_rejected(org: OidcOrg, response: httpx.Response, reason: str, email: str = "") -> None:
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text
    failures = org.recorder.of("sso.login.failed", org.tenant.id)
    assert [e.data["reason"] for e in failures] == [reason]
    assert not org.recorder.of("sso.login.succeeded", org.tenant.id)
    if email:
        assert await sessions_of(email.lower(), org.tenant.id) == 0


async def forged_flow(org: OidcOrg, idp_client: httpx.AsyncClient, email: str, forge: Any) -> httpx.Response:
    """Run the real flow; the IdP answers the token request with ``forge(nonce)`` as ID token."""
    browser = org.browser(idp_client)
    response = await start_sso(browser, email)
    nonce = await latest_nonce(org.connection["id"])
    await org.idp.control("/test/id-token", {"token": forge(nonce)})
    return await browser.follow(response)


def signed(org: OidcOrg, claims: dict[str, Any], key: RSAKey | None = None, kid: str = "idp-key-1") -> str:
    return jwt.encode({"alg": "RS256", "kid": kid}, claims, key or org.idp.key)


@pytest.mark.parametrize("case, reason", [
    ("wrong_nonce", "wrong_nonce"),
    ("foreign_issuer", "wrong_issuer"),
    ("other_client", "wrong_audience"),
    ("other_azp", "wrong_audience"),
    ("expired", "expired"),
    ("future", "clock_skew"),
    ("bad_signature", "bad_signature"),
    ("alg_none", "bad_algorithm"),
    ("alg_confusion", "bad_algorithm"),
    ("unverified_email", "email_unverified"),
    ("foreign_domain", "domain_not_verified"),
])
async def test_forged_id_tokens_are_refused(org: OidcOrg, idp_client, case, reason):
    email = f"mallory@{org.domain}"
    now = int(time.time())
    other_key = RSAKey.generate_key(2048)

    def forge(nonce: str) -> str:
        if case == "wrong_nonce":
            return signed(org, claims_for(org, email, "not-the-nonce"))
        if case == "foreign_issuer":
            return signed(org, claims_for(org, email, nonce, iss="https://evil.example"))
        if case == "other_client":
            return signed(org, claims_for(org, email, nonce, aud="another-client", azp=None))
        if case == "other_azp":
            return signed(org, claims_for(org, email, nonce, aud=[org.client_id, "x"], azp="x"))
        if case == "expired":
            return signed(org, claims_for(org, email, nonce, iat=now - 4000, exp=now - 3000))
        if case == "future":
            return signed(org, claims_for(org, email, nonce, iat=now + 3600, exp=now + 4000))
        if case == "bad_signature":
            return signed(org, claims_for(org, email, nonce), key=other_key)
        if case == "unverified_email":
            return signed(org, claims_for(org, email, nonce, email_verified=False))
        if case == "foreign_domain":
            return signed(org, claims_for(org, "victim@other-company.example", nonce))
        payload = b64(json.dumps(claims_for(org, email, nonce)).encode())
        if case == "alg_none":
            return f"{b64(json.dumps({'alg': 'none'}).encode())}.{payload}."
        # algorithm confusion: HS256 keyed with the IdP's public key
        header = b64(json.dumps({"alg": "HS256", "kid": "idp-key-1"}).encode())
        public_pem = org.idp.key.as_pem(private=False)
        mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(mac)}"

    response = await forged_flow(org, idp_client, email, forge)
    await assert_rejected(org, response, reason, email)


async def test_unknown_kid_refetches_keys_once_per_interval(org: OidcOrg, idp_client):
    email = f"rotation@{org.domain}"
    rogue = RSAKey.generate_key(2048)
    await sign_in(org, idp_client, f"warmup@{org.domain}")  # the JWKS is cached now
    org.recorder.events.clear()
    before = oidc.cache_of(org.app.state.portal).jwks_fetches
    for _ in range(2):
        response = await forged_flow(org, httpx.AsyncClient(), email,
                                     lambda n: signed(org, claims_for(org, email, n), key=rogue, kid="rotated-2"))
        assert response.status_code == 400
    # the first unknown kid refetched; the second within the interval did not hit the IdP again
    assert oidc.cache_of(org.app.state.portal).jwks_fetches == before + 1
    assert [e.data["reason"] for e in org.recorder.of("sso.login.failed")] == ["unknown_key", "unknown_key"]
    assert await sessions_of(email, org.tenant.id) == 0


async def test_missing_state_is_refused(org: OidcOrg):
    client = client_for(org.app, org.tenant.host)
    response = await client.get(f"/sso/oidc/{org.connection['id']}/callback?code=abc")
    await assert_rejected(org, response, "missing_state")


async def test_reused_state_is_refused(org: OidcOrg, idp_client):
    email = f"replay@{org.domain}"
    browser = org.browser(idp_client)
    response = await start_sso(browser, email)
    # stop at the callback the IdP sends us to, use it, then send it again
    while not response.headers["location"].startswith(f"http://{org.tenant.host}/sso/oidc/"):
        response = await browser.get(httpx.URL(str(response.request.url)).join(response.headers["location"]).__str__())
    callback = response.headers["location"]
    first = await browser.follow(await browser.get(callback))
    assert first.status_code == 200
    org.recorder.events.clear()
    attacker = Browser(client_for(org.app, org.tenant.host), idp_client, org.tenant.host)
    again = await attacker.get(callback)
    await assert_rejected(org, again, "replayed_state")


async def test_state_from_another_browser_is_refused(org: OidcOrg, idp_client):
    email = f"csrf@{org.domain}"
    browser = org.browser(idp_client)
    response = await start_sso(browser, email)
    while not response.headers["location"].startswith(f"http://{org.tenant.host}/sso/oidc/"):
        response = await browser.get(str(httpx.URL(str(response.request.url)).join(response.headers["location"])))
    victim = client_for(org.app, org.tenant.host)  # login CSRF: the victim's browser has no binding cookie
    response = await victim.get(response.headers["location"])
    await assert_rejected(org, response, "browser_mismatch", email)


async def test_pkce_mismatch_is_refused(org: OidcOrg, idp_client):
    email = f"pkce@{org.domain}"
    browser = org.browser(idp_client)
    response = await start_sso(browser, email)
    await SsoPending.update({SsoPending.code_verifier: "x" * 64}).where(SsoPending.connection == org.connection["id"])
    response = await browser.follow(response)
    await assert_rejected(org, response, "token_exchange_failed", email)


async def test_another_tenants_callback_is_refused(portal_app_factory, make_tenant, recorder, tiny_dns, oidc_idp,
                                                   idp_client):
    app, tenant_a = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    org_a = await configure_oidc(app, tenant_a, oidc_idp, tiny_dns, recorder)
    tenant_b = await make_tenant(plugins=["sso", "sso-events"], settings={"sso_dns_resolver": tiny_dns.address})
    await refresh_tenants(app)
    org_b = await configure_oidc(app, tenant_b, oidc_idp, tiny_dns, recorder)
    email = f"cross@{org_a.domain}"
    browser = org_a.browser(idp_client)
    response = await start_sso(browser, email)
    while not response.headers["location"].startswith(f"http://{tenant_a.host}/sso/oidc/"):
        response = await browser.get(str(httpx.URL(str(response.request.url)).join(response.headers["location"])))
    query = httpx.URL(response.headers["location"]).query.decode()
    recorder.events.clear()
    other = client_for(app, tenant_b.host)
    # tenant A's connection id means nothing on tenant B's host
    assert (await other.get(f"/sso/oidc/{org_a.connection['id']}/callback?{query}")).status_code == 404
    # and A's code + state presented to B's own connection is not a sign-in B started
    response = await other.get(f"/sso/oidc/{org_b.connection['id']}/callback?{query}")
    await assert_rejected(org_b, response, "unknown_state", email)
    assert await sessions_of(email, tenant_a.id) == 0
