"""Sign-in, sign-out, CSRF, session rotation and expiry, throttling, redirects and cross-tenant sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.db import utcnow
from core.security import token_hash
from core.tables import UserSession
from core.testing import PASSWORD, client_for, csrf_token, form_post, login


async def _session_row(client):
    token = client.cookies.get("portal_session")
    return await UserSession.select().where(UserSession.key_hash == token_hash(token)).first() if token else None


async def test_login_lands_in_the_organization_and_logout_ends_the_session(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        response = await login(client, tenant.email("owner"))
        assert response.status_code == 302
        assert response.headers["location"] == f"/o/{tenant.org_slug}/"
        session = await _session_row(client)
        assert session["auth_method"] == "password" and session["revoked_at"] is None
        overview = await client.get(response.headers["location"])
        assert overview.status_code == 200 and "Owner User" in overview.text
        logout = await form_post(client, "/logout", {}, token_from="/account")
        assert logout.status_code == 302 and logout.headers["location"] == "/login"
        assert (await UserSession.select().where(UserSession.id == session["id"]).first())["revoked_at"] is not None
        assert (await client.get(f"/o/{tenant.org_slug}/")).status_code == 302


async def test_wrong_password_and_unknown_user_get_the_same_generic_error(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        wrong = await login(client, tenant.email("owner"), "not-the-password")
        unknown = await login(client, "nobody@nowhere.example", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "Email or password is incorrect." in response.text
        assert "portal_session" not in response.headers.get("set-cookie", "")


async def test_unsafe_methods_without_csrf_token_are_rejected(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        await client.get("/login")
        no_token = await client.post("/login", data={"email": tenant.email("owner"), "password": PASSWORD})
        assert no_token.status_code == 403
        assert "Reload the page" in no_token.text
        forged = await client.post("/login", data={"_csrf_token": "forged", "email": tenant.email("owner"),
                                                    "password": PASSWORD})
        assert forged.status_code == 403
        await login(client, tenant.email("owner"))
        assert (await client.post("/logout")).status_code == 403
        assert (await client.get("/account")).status_code == 200  # still signed in


async def test_session_id_rotates_at_login(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        client.cookies.set("portal_session", "attacker-chosen-value", domain=tenant.host)
        await login(client, tenant.email("owner"))
        first = client.cookies.get("portal_session")
        assert first != "attacker-chosen-value"
        await form_post(client, "/login", {"email": tenant.email("admin"), "password": PASSWORD},
                        token_from="/account")
        second = client.cookies.get("portal_session")
        assert "Admin User" in (await client.get("/account")).text
    assert first and second and first != second
    old = await UserSession.select().where(UserSession.key_hash == token_hash(first)).first()
    assert old["revoked_at"] is not None
    assert not await UserSession.exists().where(UserSession.key_hash == token_hash("attacker-chosen-value"))


async def test_idle_and_absolute_timeouts_end_sessions(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        session = await _session_row(client)
        await UserSession.update({UserSession.last_seen_at: utcnow() - timedelta(days=1)}).where(
            UserSession.id == session["id"])
        assert (await client.get("/account")).status_code == 302
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        session = await _session_row(client)
        await UserSession.update({UserSession.expires_at: utcnow() - timedelta(seconds=1)}).where(
            UserSession.id == session["id"])
        assert (await client.get("/account")).status_code == 302


async def test_throttling_per_account_with_generic_message(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        for _ in range(5):
            assert (await login(client, tenant.email("owner"), "wrong-password")).status_code == 400
        blocked = await login(client, tenant.email("owner"), PASSWORD)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert "Too many sign-in attempts" in blocked.text
        other_account = await login(client, tenant.email("admin"), PASSWORD)
        assert other_account.status_code == 302


async def test_throttling_per_address(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host, client_ip="192.0.2.77") as client:
        for i in range(30):
            await login(client, f"guess{i}@{tenant.slug}.example", "wrong-password")
        assert (await login(client, tenant.email("viewer"), PASSWORD)).status_code == 429
    async with client_for(portal_app, tenant.host, client_ip="192.0.2.78") as elsewhere:
        assert (await login(elsewhere, tenant.email("viewer"), PASSWORD)).status_code == 302


@pytest.mark.parametrize("target", [
    "//evil.example", "/\\evil.example", "https:evil.example", "https://evil.example/", "/\\/evil.example",
    "\\\\evil.example", "/%0d%0aLocation:evil", "javascript:alert(1)",
])
async def test_open_redirects_are_refused(portal_app, make_tenant, target):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        response = await login(client, tenant.email("owner"), next_path=target)
    assert response.status_code == 302
    from urllib.parse import urlsplit

    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location
    assert not urlsplit(location).netloc and "\r" not in location and "\n" not in location


async def test_next_redirect_to_a_local_path_is_followed(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        redirect = await client.get("/account")
        assert redirect.status_code == 302 and redirect.headers["location"] == "/login?next=/account"
        response = await login(client, tenant.email("owner"), next_path="/account")
        assert response.headers["location"] == "/account"


async def test_tenant_a_session_is_worthless_on_tenant_b(portal_app, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    async with client_for(portal_app, a.host) as client_a:
        await login(client_a, a.email("owner"))
        stolen = client_a.cookies.get("portal_session")
    async with client_for(portal_app, b.host) as client_b:
        client_b.cookies.set("portal_session", stolen, domain=b.host)
        assert (await client_b.get("/account")).status_code == 302
        assert (await client_b.get(f"/o/{a.org_slug}/")).status_code == 302
    async with client_for(portal_app, a.host) as again:
        again.cookies.set("portal_session", stolen, domain=a.host)
        assert (await again.get("/account")).status_code == 200


async def test_the_same_email_in_two_tenants_is_two_accounts(portal_app, make_tenant):
    from core.tables import User

    a, b = await make_tenant(), await make_tenant()
    await User.update({User.email: "shared@example.com"}).where(User.email == a.email("member"))
    await User.update({User.email: "shared@example.com"}).where(User.email == b.email("member"))
    async with client_for(portal_app, b.host) as client:
        response = await login(client, "shared@example.com")
        assert response.headers["location"] == f"/o/{b.org_slug}/"


async def test_non_member_sees_the_same_404_as_a_missing_organization(portal_app, make_tenant):
    import uuid

    from core.tables import Membership, Organization, User

    tenant, other = await make_tenant(), await make_tenant()
    # a second organization in the same tenant that the member does not belong to
    org_id = uuid.uuid4()
    await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug="private-org", name="Private Org",
                                           created_at=utcnow()))
    owner = await User.select(User.id).where(User.email == tenant.email("owner")).first()
    await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant.id, organization=org_id, user=owner["id"],
                                       role="owner", created_at=utcnow()))
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("member"))
        not_member = await client.get("/o/private-org/")
        missing = await client.get("/o/does-not-exist/")
        other_tenants_org = await client.get(f"/o/{other.org_slug}/")
    assert not_member.status_code == missing.status_code == other_tenants_org.status_code == 404
    assert "Private Org" not in not_member.text
    assert not_member.text.replace("private-org", "x") == missing.text.replace("does-not-exist", "x")


async def test_login_form_carries_a_csrf_token_and_no_session(portal_app, make_tenant):
    tenant = await make_tenant()
    async with client_for(portal_app, tenant.host) as client:
        assert await csrf_token(client, "/login")
        assert "portal_session" not in client.cookies
