"""The configuration page: domain proof over real DNS, one verifying organization per tenant, validation
messages an IT admin understands, isolation between organizations and tenants, and the hook contract."""

from __future__ import annotations

import uuid

from core.contracts import LoginOption
from core.db import utcnow
from core.tables import Membership, Organization, User
from core.testing import client_for, form_post, login, refresh_tenants
from plugins.sso.tables import SsoConnection, SsoDomain
from plugins.sso.tests.helpers import admin_client, corp_domain, create_connection, sso_setup, verify_domain_via_ui


async def second_org(tenant, owner_email: str) -> str:
    """Another organization of the same tenant, owned by ``owner_email``; returns its slug."""
    org_id, slug = uuid.uuid4(), f"second-{uuid.uuid4().hex[:6]}"
    await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug=slug, name="Second Org",
                                           created_at=utcnow()))
    user = await User.select(User.id).where(User.tenant == tenant.id, User.email == owner_email).first()
    await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant.id, organization=org_id, user=user["id"],
                                       role="owner", created_at=utcnow()))
    return slug


async def test_domain_needs_the_txt_record(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    owner = await admin_client(app, tenant)
    page = f"/o/{tenant.org_slug}/sso"
    domain = corp_domain()
    assert (await form_post(owner, f"{page}/domains", {"domain": f"@{domain.upper()}"}, token_from=page)
            ).status_code == 302
    row = await SsoDomain.select().where(SsoDomain.organization == tenant.org_id).first()
    assert row["domain"] == domain and row["verified_at"] is None
    listing = await owner.get(page)
    assert f"_portal-verification.{domain}" in listing.text and f"portal-verification={row['token']}" in listing.text
    response = await form_post(owner, f"{page}/domains/{row['id']}/verify", {}, token_from=page)
    assert response.status_code == 400 and "No TXT record found" in response.text
    tiny_dns.records[f"_portal-verification.{domain}"] = ["portal-verification=someone-elses-token"]
    response = await form_post(owner, f"{page}/domains/{row['id']}/verify", {}, token_from=page)
    assert response.status_code == 400 and "does not contain" in response.text
    tiny_dns.records[f"_portal-verification.{domain}"] = ["v=spf1 -all", f"portal-verification={row['token']}"]
    response = await form_post(owner, f"{page}/domains/{row['id']}/verify", {}, token_from=page)
    assert response.status_code == 200 and f"{domain} is verified" in response.text
    types = [e.type for e in recorder.of("sso.domain.", tenant.id)]
    assert types == ["sso.domain.added", "sso.domain.verification_failed", "sso.domain.verification_failed",
                     "sso.domain.verified"]


async def test_bad_domains_are_explained(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    owner = await admin_client(app, tenant)
    page = f"/o/{tenant.org_slug}/sso"
    for value, message in (("https://x", "Enter a domain such as"), ("gmail.com", "public email provider")):
        response = await form_post(owner, f"{page}/domains", {"domain": value}, token_from=page)
        assert response.status_code == 400 and message in response.text


async def test_one_organization_per_tenant_verifies_a_domain(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    owner = await admin_client(app, tenant)
    domain = corp_domain()
    await verify_domain_via_ui(owner, tenant, tiny_dns, domain)
    other_slug = await second_org(tenant, tenant.email("owner"))
    other_page = f"/o/{other_slug}/sso"
    response = await form_post(owner, f"{other_page}/domains", {"domain": domain}, token_from=other_page)
    assert response.status_code == 400 and "already verified by another organization" in response.text
    # another tenant may verify the same domain for its own organization
    tenant_b = await make_tenant(plugins=["sso", "sso-events"], settings={"sso_dns_resolver": tiny_dns.address})
    await refresh_tenants(app)
    owner_b = await admin_client(app, tenant_b)
    page_b = f"/o/{tenant_b.org_slug}/sso"
    assert (await form_post(owner_b, f"{page_b}/domains", {"domain": domain}, token_from=page_b)).status_code == 302
    row_b = await SsoDomain.select().where(SsoDomain.organization == tenant_b.org_id).first()
    tiny_dns.records[f"_portal-verification.{domain}"].append(f"portal-verification={row_b['token']}")
    response = await form_post(owner_b, f"{page_b}/domains/{row_b['id']}/verify", {}, token_from=page_b)
    assert response.status_code == 200 and "is verified" in response.text


async def test_organizations_and_tenants_cannot_touch_each_others_domains(portal_app_factory, make_tenant, recorder,
                                                                          tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    owner = await admin_client(app, tenant)
    page = f"/o/{tenant.org_slug}/sso"
    assert (await form_post(owner, f"{page}/domains", {"domain": corp_domain()}, token_from=page)).status_code == 302
    row = await SsoDomain.select().where(SsoDomain.organization == tenant.org_id).first()
    other_slug = await second_org(tenant, tenant.email("owner"))
    other_page = f"/o/{other_slug}/sso"
    for action in ("verify", "delete"):
        response = await form_post(owner, f"{other_page}/domains/{row['id']}/{action}", {}, token_from=other_page)
        assert response.status_code == 404
    tenant_b = await make_tenant(plugins=["sso", "sso-events"])
    await refresh_tenants(app)
    owner_b = await admin_client(app, tenant_b)
    assert (await owner_b.get(f"/o/{tenant.org_slug}/sso")).status_code == 404
    assert await SsoDomain.exists().where(SsoDomain.id == row["id"])


async def test_connection_settings_are_validated_in_plain_words(portal_app_factory, make_tenant, recorder, tiny_dns,
                                                                oidc_idp):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    owner = await admin_client(app, tenant)
    page = f"/o/{tenant.org_slug}/sso"
    base = {"oidc_issuer": oidc_idp.issuer, "oidc_client_id": "c", "oidc_client_secret": "s"}
    for changes, message in (
        ({"oidc_algorithms": "HS256"}, "HS256 is not allowed"),
        ({"oidc_algorithms": "none"}, "none is not allowed"),
        ({"oidc_issuer": "http://login.example.com/"}, "must use https"),
        ({"oidc_issuer": oidc_idp.issuer + "/"}, "Copy the issuer exactly"),
        ({"oidc_issuer": "https://127.0.0.1:1/"}, "Could not reach the identity provider"),
    ):
        response = await form_post(owner, f"{page}/oidc", {**base, **changes}, token_from=page)
        assert response.status_code == 400 and message in response.text, (changes, response.text[-2000:])
        assert "Traceback" not in response.text
    assert not await SsoConnection.exists().where(SsoConnection.organization == tenant.org_id)
    await create_connection(owner, tenant, "saml")
    for metadata, message in (("<not xml", "not well-formed XML"),
                              ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>', "DTD"),
                              ("<EntityDescriptor/>", "This is not SAML metadata")):
        response = await form_post(owner, f"{page}/saml", {"saml_metadata": metadata}, token_from=page)
        assert response.status_code == 400 and message in response.text
    # switching SSO on needs a verified domain first
    response = await form_post(owner, f"{page}/policy", {"enabled": "on", "policy": "required",
                                                         "default_role": "member"}, token_from=page)
    assert response.status_code == 400 and "Verify at least one email domain" in response.text
    response = await form_post(owner, f"{page}/policy", {"policy": "optional", "default_role": "owner"},
                               token_from=page)
    assert response.status_code == 400 and "Choose a role SSO may grant" in response.text
    response = await form_post(owner, f"{page}/policy", {"policy": "optional", "default_role": "member",
                                                         "group_roles": "admins = owner"}, token_from=page)
    assert response.status_code == 400 and "not a role SSO can grant" in response.text


async def test_test_connection_reports_failures_in_words(portal_app_factory, make_tenant, recorder, tiny_dns,
                                                         oidc_idp, idp_client):
    from plugins.sso.tests.conftest import Browser
    from plugins.sso.tests.test_oidc import configure_oidc

    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    await configure_oidc(app, tenant, oidc_idp, tiny_dns, recorder)
    owner = await admin_client(app, tenant)
    page = f"/o/{tenant.org_slug}/sso"
    response = await form_post(owner, f"{page}/test", {"email": "someone@unverified.example"}, token_from=page)
    result = await Browser(owner, idp_client, tenant.host).follow(response)
    assert result.status_code == 200 and "The test sign-in failed" in result.text
    assert "is not in a domain this organization has verified" in result.text
    tested = recorder.of("sso.connection.tested", tenant.id)
    assert [e.outcome for e in tested] == ["failure"] and not recorder.of("sso.login.failed", tenant.id)


async def test_hooks_and_a_tenant_without_the_plugin(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    runtime = app.state.portal
    record = runtime.directory.lookup(tenant.host)
    from core.context import system_context

    ctx = system_context(runtime, record)
    options = await runtime.plugins.call("portal_login_options", tenant=record, ctx=ctx)
    assert ("sso", [LoginOption("Continue with SSO", "/sso/start")]) in options
    assert await runtime.plugins.first("portal_password_login_policy", tenant=record, ctx=ctx,
                                       email=f"x@{corp_domain()}") is None
    assert "sso.manage" in runtime.permissions_for_role(record, "admin")
    assert "sso.manage" not in runtime.permissions_for_role(record, "member")
    plain = await make_tenant(plugins=["team"])
    await refresh_tenants(app)
    client = client_for(app, plain.host)
    assert "Continue with SSO" not in (await client.get("/login")).text
    assert (await client.get("/sso/start")).status_code == 404
    await login(client, plain.email("owner"))
    assert (await client.get(f"/o/{plain.org_slug}/sso")).status_code == 404


async def test_seed_demo_claims_a_domain_once(portal_app_factory, make_tenant, recorder, tiny_dns):
    from core.context import CurrentOrganization, system_context

    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    runtime = app.state.portal
    record = runtime.directory.lookup(tenant.host)
    org = CurrentOrganization(tenant.org_id, tenant.org_slug, "Org")
    for _ in range(2):
        await runtime.plugins.call("portal_seed_demo", tenant=record, strict=True,
                                   ctx=system_context(runtime, record, organization=org), org=org)
    rows = await SsoDomain.select().where(SsoDomain.organization == tenant.org_id)
    assert [(r["domain"], r["verified_at"]) for r in rows] == [(f"{tenant.org_slug}.example", None)]
