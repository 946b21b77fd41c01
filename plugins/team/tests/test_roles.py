"""Role rules: last owner protection, no escalation, removal ends sessions, leaving, ownership transfer."""

from __future__ import annotations

from core.tables import UserSession
from core.testing import client_for, login
from plugins.team.tests.conftest import add_member, membership_id, post, role_of


async def test_last_owner_cannot_be_demoted_removed_or_leave(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    owner_id = await membership_id(tenant.org_id, tenant.email("owner"))
    async with client_for(portal_app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        demote = await post(owner, f"{base}/members/{owner_id}/role", {"role": "admin"}, token_from=base)
        assert demote.status_code == 409 and "needs at least one owner" in demote.text
        htmx = await post(owner, f"{base}/members/{owner_id}/role", {"role": "admin"}, token_from=base, htmx=True)
        assert htmx.status_code == 409 and htmx.headers["content-type"].startswith("text/plain")
        leave_page = await owner.get(f"{base}/leave")
        assert "only owner" in leave_page.text and "Transfer ownership" in leave_page.text
        leave = await post(owner, f"{base}/leave", token_from=base)
        assert leave.status_code == 409 and "last owner" in leave.text
        remove_self = await post(owner, f"{base}/members/{owner_id}/remove", token_from=base)
        assert remove_self.status_code == 400
    assert await role_of(tenant.org_id, tenant.email("owner")) == "owner"


async def test_last_owner_rule_holds_in_the_service_too(portal_app, make_tenant):
    """Even a caller the HTTP layer would not produce (the system, acting as owner) cannot orphan the org."""
    import pytest

    from core.context import CurrentOrganization, system_context
    from core.testing import refresh_tenants
    from plugins.team import service
    from plugins.team.rules import TeamError

    tenant = await make_tenant(plugins=["team"])
    await refresh_tenants(portal_app)
    record = portal_app.state.portal.directory.lookup(tenant.host)
    ctx = system_context(portal_app.state.portal, record,
                         organization=CurrentOrganization(tenant.org_id, tenant.org_slug, f"Org {tenant.slug}"))
    owner_id = await membership_id(tenant.org_id, tenant.email("owner"))
    for action in (service.change_role(ctx, owner_id, "member"), service.remove_member(ctx, owner_id)):
        with pytest.raises(TeamError) as refused:
            await action
        assert refused.value.status == 409
    assert await role_of(tenant.org_id, tenant.email("owner")) == "owner"


async def test_with_two_owners_one_may_step_down(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    await add_member(tenant, "second.owner@example.com", "owner")
    owner_id = await membership_id(tenant.org_id, tenant.email("owner"))
    async with client_for(portal_app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        response = await post(owner, f"{base}/members/{owner_id}/role", {"role": "admin"}, token_from=base,
                              htmx=True)
        assert response.status_code == 200 and response.headers.get("hx-refresh") == "true"
    assert await role_of(tenant.org_id, tenant.email("owner")) == "admin"


async def test_nobody_grants_a_role_above_their_own(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    member_id = await membership_id(tenant.org_id, tenant.email("member"))
    owner_id = await membership_id(tenant.org_id, tenant.email("owner"))
    async with client_for(portal_app, tenant.host) as admin:
        await login(admin, tenant.email("admin"))
        page = await admin.get(base)
        assert 'value="owner"' not in page.text.split('id="invite-role"')[1].split("</select>")[0]
        promote = await post(admin, f"{base}/members/{member_id}/role", {"role": "owner"}, token_from=base)
        assert promote.status_code == 403 and "above your own" in promote.text
        invite = await post(admin, f"{base}/invitations", {"emails": "boss@example.com", "role": "owner"},
                            token_from=base)
        assert invite.status_code == 403
        demote_owner = await post(admin, f"{base}/members/{owner_id}/role", {"role": "viewer"}, token_from=base)
        assert demote_owner.status_code == 403
        remove_owner = await post(admin, f"{base}/members/{owner_id}/remove", token_from=base)
        assert remove_owner.status_code == 403
        ok = await post(admin, f"{base}/members/{member_id}/role", {"role": "admin"}, token_from=base)
        assert ok.status_code == 302
    assert await role_of(tenant.org_id, tenant.email("owner")) == "owner"
    assert await role_of(tenant.org_id, tenant.email("member")) == "admin"


async def post_as(app, tenant, role, path, data):
    """Sign in as ``role`` and post once."""
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email(role))
        return await post(client, path, data, token_from=f"/o/{tenant.org_slug}/team")


async def test_tenant_granted_manager_cannot_escalate(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"], settings={"roles": {"member": {"grant": ["team.manage"]}}})
    base = f"/o/{tenant.org_slug}/team"
    viewer_id = await membership_id(tenant.org_id, tenant.email("viewer"))
    admin_id = await membership_id(tenant.org_id, tenant.email("admin"))
    up = await post_as(portal_app, tenant, "member", f"{base}/members/{viewer_id}/role", {"role": "admin"})
    assert up.status_code == 403
    down = await post_as(portal_app, tenant, "member", f"{base}/members/{admin_id}/role", {"role": "viewer"})
    assert down.status_code == 403
    fine = await post_as(portal_app, tenant, "member", f"{base}/members/{viewer_id}/role", {"role": "member"})
    assert fine.status_code == 302
    assert await role_of(tenant.org_id, tenant.email("admin")) == "admin"
    assert await role_of(tenant.org_id, tenant.email("viewer")) == "member"


async def test_removed_member_is_signed_out_at_once(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    member_id = await membership_id(tenant.org_id, tenant.email("member"))
    async with client_for(portal_app, tenant.host) as member, client_for(portal_app, tenant.host) as admin:
        await login(member, tenant.email("member"))
        assert (await member.get(base)).status_code == 200
        await login(admin, tenant.email("admin"))
        confirm = await admin.get(f"{base}/members/{member_id}/remove")
        assert confirm.status_code == 200 and "signed out" in confirm.text
        response = await post(admin, f"{base}/members/{member_id}/remove", token_from=base, htmx=True)
        assert response.status_code == 200
        assert 'id="team-summary"' in response.text and "hx-swap-oob" in response.text
        after = await member.get(base)
        assert after.status_code == 302 and after.headers["location"].startswith("/login")
    assert await role_of(tenant.org_id, tenant.email("member")) is None
    from core.tables import User

    user = await User.select(User.id).where(User.email == tenant.email("member")).first()
    assert await UserSession.count().where(UserSession.user == user["id"], UserSession.revoked_at.is_null()) == 0


async def test_member_leaves(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("billing"))
        page = await client.get(f"{base}/leave")
        assert page.status_code == 200 and "Leave organization" in page.text
        response = await post(client, f"{base}/leave", token_from=f"{base}/leave")
        assert response.status_code == 302 and response.headers["location"] == "/account"
        assert (await client.get(base)).status_code == 404
    assert await role_of(tenant.org_id, tenant.email("billing")) is None


async def test_transfer_ownership(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    org_name = f"Org {tenant.slug}"
    async with client_for(portal_app, tenant.host) as admin:
        await login(admin, tenant.email("admin"))
        assert (await admin.get(f"{base}/transfer")).status_code == 403
        refused = await post(admin, f"{base}/transfer", {"email": tenant.email("admin"), "confirm": org_name},
                             token_from=base)
        assert refused.status_code == 403
    async with client_for(portal_app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        form = await owner.get(f"{base}/transfer")
        assert form.status_code == 200 and f"Type {org_name} to confirm" in form.text
        wrong_name = await post(owner, f"{base}/transfer", {"email": tenant.email("member"), "confirm": "org"},
                                token_from=f"{base}/transfer")
        assert wrong_name.status_code == 400 and "exactly as shown" in wrong_name.text
        stranger = await post(owner, f"{base}/transfer", {"email": "nobody@example.com", "confirm": org_name},
                              token_from=f"{base}/transfer")
        assert stranger.status_code == 400 and "Invite them first" in stranger.text
        assert await role_of(tenant.org_id, tenant.email("owner")) == "owner"
        done = await post(owner, f"{base}/transfer", {"email": tenant.email("member"), "confirm": org_name},
                          token_from=f"{base}/transfer")
        assert done.status_code == 302 and done.headers["location"] == f"{base}?done=transferred"
        assert "You are now an admin" in (await owner.get(done.headers["location"])).text
        assert (await owner.get(f"{base}/transfer")).status_code == 403
    assert await role_of(tenant.org_id, tenant.email("member")) == "owner"
    assert await role_of(tenant.org_id, tenant.email("owner")) == "admin"
