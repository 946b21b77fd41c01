"""Who may do what: the role × action matrix, non-members, other tenants, other organizations, CSRF,
and a tenant that has not enabled the plugin."""

from __future__ import annotations

import pytest

from core.security import Passwords
from core.testing import PASSWORD, client_for, login
from plugins.team.tables import Invitation
from plugins.team.tests.conftest import add_member, invite_link, membership_id, post, role_of, second_org

MANAGERS = {"owner", "admin"}


async def _pending_invitation(app, tenant, email="pending@example.com"):
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, f"{base}/invitations", {"emails": email, "role": "viewer"}, token_from=base)
    await invite_link(app, tenant.id, email)
    return (await Invitation.select(Invitation.id).where(
        Invitation.email == email, Invitation.tenant == tenant.id).first())["id"]


@pytest.mark.parametrize("role", ["owner", "admin", "billing", "member", "viewer"])
async def test_role_action_matrix(portal_app, make_tenant, role):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    target = await add_member(tenant, "target@example.com", "viewer")
    invitation = await _pending_invitation(portal_app, tenant)
    allowed = role in MANAGERS
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email(role))
        page = await client.get(base)
        assert page.status_code == 200  # everyone sees the team
        assert ("Invite people" in page.text) is allowed
        assert ("pending@example.com" in page.text) is allowed
        assert (f"/members/{target}/remove" in page.text) is allowed
        assert (await client.get(f"{base}/members/{target}/remove")).status_code == (200 if allowed else 403)
        actions = [
            (f"{base}/invitations", {"emails": f"new-{role}@example.com", "role": "viewer"}),
            (f"{base}/invitations/{invitation}/resend", {}),
            (f"{base}/members/{target}/role", {"role": "member"}),
            (f"{base}/invitations/{invitation}/revoke", {}),
            (f"{base}/members/{target}/remove", {}),
        ]
        for path, data in actions:
            response = await post(client, path, data, token_from=base)
            assert response.status_code == (302 if allowed else 403), (role, path, response.status_code)
        transfer = await client.get(f"{base}/transfer")
        assert transfer.status_code == (200 if role == "owner" else 403)
    assert await Invitation.exists().where(Invitation.email == f"new-{role}@example.com",
                                           Invitation.tenant == tenant.id) is allowed
    assert (await role_of(tenant.org_id, "target@example.com") is None) is allowed


async def test_non_members_and_anonymous(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    await add_member(tenant, "elsewhere@example.com", "owner", org_id=await second_org(tenant, "elsewhere"),
                     password_hash=Passwords("test").hash(PASSWORD))
    async with client_for(portal_app, tenant.host) as anonymous:
        response = await anonymous.get(base)
        assert response.status_code == 302 and response.headers["location"].startswith("/login?next=")
    async with client_for(portal_app, tenant.host) as outsider:
        await login(outsider, "elsewhere@example.com")
        assert (await outsider.get(base)).status_code == 404
        response = await post(outsider, f"{base}/invitations", {"emails": "x@example.com", "role": "viewer"},
                              token_from="/o/elsewhere/team")
        assert response.status_code == 404
    assert not await Invitation.exists().where(Invitation.email == "x@example.com")


async def test_other_tenant_cannot_reach_anything(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    intruder = await make_tenant(plugins=["team"])
    invitation = await _pending_invitation(portal_app, tenant)
    target = await membership_id(tenant.org_id, tenant.email("member"))
    async with client_for(portal_app, intruder.host) as client:
        await login(client, intruder.email("owner"))
        # the victim's organization slug on the intruder's host: not found
        assert (await client.get(f"/o/{tenant.org_slug}/team")).status_code == 404
        # the victim's ids through the intruder's own organization: not found, nothing changes
        own = f"/o/{intruder.org_slug}/team"
        for path, data in [(f"{own}/members/{target}/role", {"role": "viewer"}),
                           (f"{own}/members/{target}/remove", {}),
                           (f"{own}/invitations/{invitation}/revoke", {}),
                           (f"{own}/invitations/{invitation}/resend", {})]:
            response = await post(client, path, data, token_from=own)
            assert response.status_code == 404, path
        page = await client.get(own)
        assert tenant.email("member") not in page.text and "pending@example.com" not in page.text
    async with client_for(portal_app, tenant.host) as client:  # the intruder's session means nothing here
        assert (await client.get(f"/o/{tenant.org_slug}/team")).status_code == 302
    assert await role_of(tenant.org_id, tenant.email("member")) == "member"
    row = await Invitation.select().where(Invitation.id == invitation).first()
    assert row["revoked_at"] is None and row["send_count"] == 1


async def test_other_organization_of_the_same_tenant(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    other = await second_org(tenant, "neighbour")
    await add_member(tenant, tenant.email("admin"), "owner", org_id=other)
    stranger = await add_member(tenant, "neighbour.member@example.com", "member", org_id=other)
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))  # owner of the first organization only
        await post(client, "/o/neighbour/team/invitations", {"emails": "n@example.com", "role": "viewer"},
                   token_from=f"/o/{tenant.org_slug}/team")
        base = f"/o/{tenant.org_slug}/team"
        for path, data in [(f"{base}/members/{stranger}/role", {"role": "viewer"}),
                           (f"{base}/members/{stranger}/remove", {})]:
            assert (await post(client, path, data, token_from=base)).status_code == 404
        assert "neighbour.member@example.com" not in (await client.get(base)).text
    async with client_for(portal_app, tenant.host) as admin:
        await login(admin, tenant.email("admin"))  # owner over there, admin here
        await post(admin, "/o/neighbour/team/invitations", {"emails": "n@example.com", "role": "viewer"},
                   token_from="/o/neighbour/team")
    neighbour_invitation = (await Invitation.select(Invitation.id).where(
        Invitation.organization == other).first())["id"]
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        base = f"/o/{tenant.org_slug}/team"
        response = await post(client, f"{base}/invitations/{neighbour_invitation}/revoke", token_from=base)
        assert response.status_code == 404
    assert await role_of(other, "neighbour.member@example.com") == "member"
    assert (await Invitation.select().where(Invitation.id == neighbour_invitation).first())["revoked_at"] is None


async def test_unsafe_routes_need_the_csrf_token(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])
    base = f"/o/{tenant.org_slug}/team"
    target = await membership_id(tenant.org_id, tenant.email("viewer"))
    invitation = await _pending_invitation(portal_app, tenant)
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await client.get(base)
        for path, data in [
            (f"{base}/invitations", {"emails": "csrf@example.com", "role": "viewer"}),
            (f"{base}/invitations/{invitation}/resend", {}), (f"{base}/invitations/{invitation}/revoke", {}),
            (f"{base}/members/{target}/role", {"role": "member"}), (f"{base}/members/{target}/remove", {}),
            (f"{base}/leave", {}), (f"{base}/transfer", {"email": tenant.email("viewer"), "confirm": "x"}),
        ]:
            forged = await client.post(path, data={**data, "_csrf_token": "forged"})
            assert forged.status_code == 403, path
            missing = await client.post(path, data=data, headers={"HX-Request": "true"})
            assert missing.status_code == 403, path
    assert await role_of(tenant.org_id, tenant.email("viewer")) == "viewer"
    assert await role_of(tenant.org_id, tenant.email("owner")) == "owner"
    assert not await Invitation.exists().where(Invitation.email == "csrf@example.com")


async def test_disabled_plugin_is_not_there(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["billing"])  # team not enabled
    enabled = await make_tenant(plugins=["team"])
    invitation_token = "t" * 43
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        assert (await client.get(f"/o/{tenant.org_slug}/team")).status_code == 404
        assert (await client.get(f"/o/{tenant.org_slug}/team/leave")).status_code == 404
        assert (await client.get(f"/invite/{invitation_token}")).status_code == 404
        assert (await client.get("/static/plugins/team/team.js")).status_code == 404
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert f"/o/{tenant.org_slug}/team" not in overview.text  # no nav item, no card
    async with client_for(portal_app, enabled.host) as client:
        await login(client, enabled.email("viewer"))
        overview = await client.get(f"/o/{enabled.org_slug}/")
        assert f'href="/o/{enabled.org_slug}/team"' in overview.text and "5 members" in overview.text
        assert (await client.get("/static/plugins/team/htmx.min.js")).status_code == 200
