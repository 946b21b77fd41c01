"""Custom domains against a real DNS server (dnsmasq): add → records → verify → live → primary → remove,
www/apex pairs, and isolation between tenants."""

from __future__ import annotations

import re

from core.console.domains import verification_token
from core.tables import TenantDomain
from core.testing import client_for, csrf_token


async def _post(client, path, data=None):
    token = await csrf_token(client, "/admin/domains")
    return await client.post(path, data={"_csrf_token": token, **(data or {})})


async def _row(hostname):
    return await TenantDomain.select().where(TenantDomain.hostname == hostname).first()


def _secret(app) -> str:
    return app.state.portal.settings.secret_key


async def test_add_verify_primary_remove(portal_app_factory, make_tenant, admin_client, dnsmasq, recorder):
    dnsmasq.serve()
    app = await portal_app_factory(recorder, extra={"dns_resolver": dnsmasq.address,
                                                    "cname_target": "edge.platform.test"})
    tenant = await make_tenant(plugins=["recorder"])
    custom = f"portal.{tenant.slug}-brand.test"
    async with admin_client(app, tenant) as client:
        response = await _post(client, "/admin/domains", {"hostname": f"https://{custom.upper()}/login"})
        assert response.status_code == 200, response.text
        token = verification_token(_secret(app), tenant.id, custom)
        assert f"_portal-challenge.{custom}" in response.text
        assert f"portal-verification={token}" in response.text
        assert "edge.platform.test" in response.text and "waiting for DNS" in response.text
        row = await _row(custom)
        assert row["verified"] is False and row["tenant"] == tenant.id

        # Pending: no portal on that host, no certificate.
        async with client_for(app, custom) as visitor:
            assert (await visitor.get("/login")).status_code == 404
            assert (await visitor.get("/_tls/ask", params={"domain": custom})).status_code == 404

        response = await _post(client, f"/admin/domains/{row['id']}/verify")
        assert response.status_code == 400 and "could not find the verification TXT record" in response.text
        assert (await _row(custom))["verified"] is False

        dnsmasq.serve(txt={f"_portal-challenge.{custom}": "portal-verification=someone-elses-token"})
        response = await _post(client, f"/admin/domains/{row['id']}/verify")
        assert response.status_code == 400 and "someone-elses-token" in response.text

        dnsmasq.serve(txt={f"_portal-challenge.{custom}": f"portal-verification={token}"},
                      cname={custom: "edge.platform.test"}, a={"edge.platform.test": "127.0.0.1"})
        response = await _post(client, f"/admin/domains/{row['id']}/verify")
        assert response.status_code == 200 and f"Verified: {custom} now serve" in response.text
        assert (await _row(custom))["verified"] is True

        async with client_for(app, custom) as visitor:
            login_page = await visitor.get("/login")
            assert login_page.status_code == 200 and f"Tenant {tenant.slug}" in login_page.text
            assert (await visitor.get("/_tls/ask", params={"domain": custom})).status_code == 200

        response = await _post(client, f"/admin/domains/{row['id']}/remove")
        assert response.status_code == 302
        assert await _row(custom) is None
        response = await _post(client, "/admin/domains", {"hostname": custom})
        assert response.status_code == 200
        row = await _row(custom)
        await _post(client, f"/admin/domains/{row['id']}/verify")

        response = await _post(client, f"/admin/domains/{row['id']}/primary")
        assert response.status_code == 302
        await app.state.portal.directory.ensure_fresh()  # what the next request does
        assert app.state.portal.directory.lookup(custom).primary_host == custom
        assert app.state.portal.directory.lookup(custom).base_url("https") == f"https://{custom}"
        response = await _post(client, f"/admin/domains/{row['id']}/remove")
        assert response.status_code == 400 and "is the primary domain" in response.text

        old = await _row(tenant.host)
        response = await _post(client, f"/admin/domains/{old['id']}/remove")
        assert response.status_code == 400 and "You are using the console through" in response.text

    types = [e.type for e in recorder.events if e.type.startswith("console.domain")]
    assert types == ["console.domain.added", "console.domain.verified", "console.domain.removed",
                     "console.domain.added", "console.domain.verified", "console.domain.primary_changed"]
    changed = recorder.of("console.domain.primary_changed")[0]
    assert changed.before == {"primary": tenant.host} and changed.after == {"primary": custom}


async def test_www_and_apex_pair_verify_with_one_record(portal_app_factory, make_tenant, admin_client, dnsmasq):
    app = await portal_app_factory(extra={"dns_resolver": dnsmasq.address, "platform_ips": "203.0.113.7"})
    tenant = await make_tenant()
    apex = f"{tenant.slug}shop.test"
    dnsmasq.serve()
    async with admin_client(app, tenant) as client:
        response = await _post(client, "/admin/domains", {"hostname": apex, "with_partner": "1"})
        assert response.status_code == 200 and f"Added {apex} and www.{apex}" in response.text
        assert "203.0.113.7" in response.text  # the apex needs an A record, not a CNAME
        token = verification_token(_secret(app), tenant.id, f"www.{apex}")
        assert token == verification_token(_secret(app), tenant.id, apex)
        dnsmasq.serve(txt={f"_portal-challenge.{apex}": f"portal-verification={token}"})
        www = await _row(f"www.{apex}")
        response = await _post(client, f"/admin/domains/{www['id']}/verify")
        assert response.status_code == 200
        assert (await _row(apex))["verified"] is True and (await _row(f"www.{apex}"))["verified"] is True


async def test_invalid_and_taken_domains(portal_app_factory, make_tenant, admin_client, dnsmasq):
    dnsmasq.serve()
    app = await portal_app_factory(extra={"dns_resolver": dnsmasq.address})
    tenant_a = await make_tenant()
    tenant_b = await make_tenant()
    claimed = f"portal.{tenant_a.slug}.test"
    async with admin_client(app, tenant_a) as client:
        for bad, message in (("not a domain", "Enter a domain name"), ("localhost", "Enter a domain name"),
                             ("shop.internal", "public domain name"), ("10.0.0.1", "Enter a domain name")):
            response = await _post(client, "/admin/domains", {"hostname": bad})
            assert response.status_code == 400 and message in response.text, bad
        assert (await _post(client, "/admin/domains", {"hostname": claimed})).status_code == 200
        again = await _post(client, "/admin/domains", {"hostname": claimed})
        assert again.status_code == 400 and "already one of your domains" in again.text
    a_row = await _row(claimed)
    async with admin_client(app, tenant_b) as client:
        response = await _post(client, "/admin/domains", {"hostname": claimed})
        assert response.status_code == 400 and "already in use by another portal" in response.text
        response = await _post(client, "/admin/domains", {"hostname": tenant_a.host})
        assert response.status_code == 400 and "already in use" in response.text
        # B cannot act on A's domain by id.
        for action in ("verify", "primary", "remove"):
            response = await _post(client, f"/admin/domains/{a_row['id']}/{action}")
            assert response.status_code == 400 and "does not exist" in response.text
        page = await client.get("/admin/domains")
        assert claimed not in page.text and tenant_a.host not in page.text
    assert await _row(claimed) is not None


async def test_domain_pages_refuse_non_admins(portal_app, make_tenant):
    from core.testing import login

    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        token = await csrf_token(client, "/account")
        response = await client.post("/admin/domains", data={"_csrf_token": token, "hostname": "x.example.test"})
        assert response.status_code == 403
    assert await _row("x.example.test") is None
    assert re.match(r"^[0-9a-f]{32}$", verification_token("k", tenant.id, "x.test"))


async def test_misconfigured_resolver_reads_as_a_message(portal_app_factory, make_tenant, admin_client):
    app = await portal_app_factory(extra={"dns_resolver": "127.0.0.1:not-a-port"})
    tenant = await make_tenant()
    async with admin_client(app, tenant) as client:
        await _post(client, "/admin/domains", {"hostname": f"x.{tenant.slug}.test"})
        row = await _row(f"x.{tenant.slug}.test")
        response = await _post(client, f"/admin/domains/{row['id']}/verify")
        assert response.status_code == 400 and "DNS lookups are not configured" in response.text
