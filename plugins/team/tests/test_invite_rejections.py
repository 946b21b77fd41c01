"""Every way an invitation link can be wrong gets a clear page and changes nothing."""

from __future__ import annotations

from datetime import timedelta

from core.db import utcnow
from core.tables import Membership, User
from core.testing import client_for, login
from plugins.team.tables import Invitation
from plugins.team.tests.conftest import invite_link, post, role_of


async def _invite(app, tenant, email, role="member"):
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        response = await post(client, f"{base}/invitations", {"emails": email, "role": role}, token_from=base)
        assert response.status_code == 302
    return (await invite_link(app, tenant.id, email))[1]


async def _members(tenant):
    return await Membership.count().where(Membership.organization == tenant.org_id)


async def _register(client, token, name="Eve"):
    return await post(client, f"/invite/{token}", {"name": name, "password": "a-long-password",
                                                  "confirm_password": "a-long-password"},
                      token_from="/login")


async def test_reused_token(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "once@example.com")
    async with client_for(portal_app, tenant.host) as first:
        assert (await _register(first, token)).status_code == 302
    count = await _members(tenant)
    async with client_for(portal_app, tenant.host) as second:
        page = await second.get(f"/invite/{token}")
        assert page.status_code == 410 and "already used" in page.text
        response = await _register(second, token, "Mallory")
        assert response.status_code == 410 and "already used" in response.text
    assert await _members(tenant) == count
    assert (await User.select(User.name).where(
        User.email == "once@example.com", User.tenant == tenant.id).first())["name"] == "Eve"


async def test_expired_token(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "late@example.com")
    await Invitation.update({Invitation.expires_at: utcnow() - timedelta(seconds=1)}).where(
        Invitation.email == "late@example.com", Invitation.tenant == tenant.id)
    async with client_for(portal_app, tenant.host) as client:
        page = await client.get(f"/invite/{token}")
        assert page.status_code == 410 and "expired" in page.text and "Owner User" in page.text
        assert (await _register(client, token)).status_code == 410
    assert not await User.exists().where(User.email == "late@example.com", User.tenant == tenant.id)


async def test_revoked_token(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "nope@example.com")
    await Invitation.update({Invitation.revoked_at: utcnow()}).where(
        Invitation.email == "nope@example.com", Invitation.tenant == tenant.id)
    async with client_for(portal_app, tenant.host) as client:
        assert (await client.get(f"/invite/{token}")).status_code == 410
        response = await _register(client, token)
        assert response.status_code == 410 and "withdrawn" in response.text
    assert not await User.exists().where(User.email == "nope@example.com", User.tenant == tenant.id)


async def test_other_tenants_token_and_garbage(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    elsewhere = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "cross@example.com")
    async with client_for(portal_app, elsewhere.host) as client:
        page = await client.get(f"/invite/{token}")
        assert page.status_code == 404 and "not valid" in page.text
        assert (await _register(client, token)).status_code == 404
        assert (await client.get("/invite/" + "x" * 300)).status_code == 404
    assert not await User.exists().where(User.email == "cross@example.com", User.tenant == tenant.id)
    invitation = await Invitation.select().where(
        Invitation.email == "cross@example.com", Invitation.tenant == tenant.id).first()
    assert invitation["accepted_at"] is None


async def test_signed_in_with_a_different_email(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "someone.else@example.com")
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        page = await client.get(f"/invite/{token}")
        assert page.status_code == 403
        assert f"signed in as {tenant.email('viewer')}" in page.text and "someone.else@example.com" in page.text
        response = await post(client, f"/invite/{token}", token_from=f"/invite/{token}")
        assert response.status_code == 403
    assert await role_of(tenant.org_id, tenant.email("viewer")) == "viewer"
    assert (await Invitation.select().where(
        Invitation.email == "someone.else@example.com", Invitation.tenant == tenant.id).first())[
        "accepted_at"] is None


async def test_anonymous_cannot_take_over_an_existing_account(portal_app, make_tenant):
    from plugins.team.tests.conftest import second_org

    tenant = await make_tenant(plugins=["team"])
    await second_org(tenant, "sister")
    # invite an existing user of the tenant into a second organization, then try to set their password via the link
    from plugins.team.tests.conftest import add_member

    await add_member(tenant, tenant.email("owner"), "owner", org_id=(await second_org(tenant, "third")))
    async with client_for(portal_app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        await post(owner, "/o/third/team/invitations", {"emails": tenant.email("member"), "role": "viewer"},
                   token_from="/o/third/team")
    _, token = await invite_link(portal_app, tenant.id, tenant.email("member"))
    before = (await User.select(User.password_hash).where(
        User.email == tenant.email("member"), User.tenant == tenant.id).first())
    async with client_for(portal_app, tenant.host) as stranger:
        page = await stranger.get(f"/invite/{token}")
        assert "Sign in to accept" in page.text and 'name="password"' not in page.text
        response = await _register(stranger, token)
        assert response.status_code == 200 and "Sign in to accept" in response.text
        assert "portal_session" not in response.headers.get("set-cookie", "")
    after = (await User.select(User.password_hash).where(
        User.email == tenant.email("member"), User.tenant == tenant.id).first())
    assert before == after


async def test_form_without_csrf_token_is_refused(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    token = await _invite(portal_app, tenant, "csrf@example.com")
    async with client_for(portal_app, tenant.host) as client:
        await client.get(f"/invite/{token}")
        response = await client.post(f"/invite/{token}", data={"name": "X", "password": "a-long-password",
                                                                "confirm_password": "a-long-password"})
        assert response.status_code == 403
    assert not await User.exists().where(User.email == "csrf@example.com", User.tenant == tenant.id)
