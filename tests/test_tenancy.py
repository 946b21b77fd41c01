"""Host → tenant: case, port, trailing dot, IDNA, unknown hosts and forwarded headers."""

from __future__ import annotations

import ipaddress

import pytest

from core.tenancy import client_address, normalize_host, request_host
from core.testing import client_for


@pytest.mark.parametrize(("raw", "expected"), [
    ("Acme.Example.TEST", "acme.example.test"),
    ("acme.example.test:8443", "acme.example.test"),
    ("acme.example.test.", "acme.example.test"),
    ("ACME.example.test.:80", "acme.example.test"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("[::1]:8000", "[::1]"),
    ("", None),
    ("exa mple.test", None),
    ("acme.test:notaport", None),
    ("a" * 300, None),
])
def test_normalize_host(raw, expected):
    assert normalize_host(raw) == expected


def test_forwarded_host_counts_only_from_trusted_proxy():
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    headers = {"host": "internal.example.test", "x-forwarded-host": "Customer.Example.TEST",
               "x-forwarded-for": "203.0.113.9, 10.0.0.2"}
    assert request_host(headers, "10.1.2.3", proxies) == "customer.example.test"
    assert request_host(headers, "198.51.100.7", proxies) == "internal.example.test"
    assert request_host(headers, "10.1.2.3", ()) == "internal.example.test"
    assert client_address(headers, "10.1.2.3", proxies) == "203.0.113.9"
    assert client_address(headers, "198.51.100.7", proxies) == "198.51.100.7"


async def test_host_variants_reach_the_same_tenant(portal_app, make_tenant):
    tenant = await make_tenant(branding={"product_name": "Variant Cloud"})
    await portal_app.state.portal.directory.refresh()
    for host in (tenant.host, tenant.host.upper(), tenant.host + ".", tenant.host + ":8000"):
        async with client_for(portal_app, host) as client:
            page = await client.get("/login")
            assert page.status_code == 200, host
            assert "Variant Cloud" in page.text


async def test_idna_host_is_matched_in_punycode(portal_app, make_tenant):
    await make_tenant(extra_hosts=["xn--bcher-kva.example.test"], branding={"product_name": "Bücher"})
    await portal_app.state.portal.directory.refresh()
    async with client_for(portal_app, "XN--BCHER-KVA.example.test") as client:
        assert "Bücher" in (await client.get("/login")).text


async def test_unknown_host_gets_platform_404_never_a_tenant(portal_app, make_tenant):
    tenant = await make_tenant(branding={"product_name": "Somebody Else"})
    await portal_app.state.portal.directory.refresh()
    async with client_for(portal_app, "unknown.example.test") as client:
        for path in ("/login", "/", "/o/" + tenant.org_slug + "/", "/no-such-page", "/static/core/portal.css"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "not connected to a portal" in response.text
            assert "Somebody Else" not in response.text
        assert (await client.get("/healthz")).json()["status"] == "ok"


async def test_untrusted_forwarded_host_is_ignored(portal_app_factory, make_tenant):
    app = await portal_app_factory(trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    victim = await make_tenant(branding={"product_name": "Victim Portal"})
    await app.state.portal.directory.refresh()
    async with client_for(app, "unknown.example.test", client_ip="198.51.100.7") as client:
        response = await client.get("/login", headers={"X-Forwarded-Host": victim.host})
        assert response.status_code == 404
    async with client_for(app, "unknown.example.test", client_ip="10.0.0.5") as proxy:
        response = await proxy.get("/login", headers={"X-Forwarded-Host": victim.host})
        assert response.status_code == 200 and "Victim Portal" in response.text


async def test_responses_vary_by_host_and_cookies_are_host_only(portal_app, make_tenant):
    tenant = await make_tenant()
    await portal_app.state.portal.directory.refresh()
    async with client_for(portal_app, tenant.host) as client:
        response = await client.get("/login")
        assert "Host" in response.headers["vary"]
        for cookie in response.headers.get_list("set-cookie"):
            assert "domain=" not in cookie.lower()


async def test_domain_change_is_seen_after_invalidation(portal_app, make_tenant):
    import uuid

    from core.db import utcnow
    from core.tables import TenantDomain

    tenant = await make_tenant()
    new_host = f"new-{tenant.slug}.example.test"
    await portal_app.state.portal.directory.refresh()
    await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant.id, hostname=new_host, is_primary=False,
                                           verified=True, created_at=utcnow()))
    async with client_for(portal_app, new_host) as client:
        assert (await client.get("/login")).status_code == 404  # cached snapshot (TTL) still says unknown
        portal_app.state.portal.directory.invalidate()
        assert (await client.get("/login")).status_code == 200
