"""The plugin through the hook contract: events with before/after, nav, card, permissions, demo seed."""

from __future__ import annotations

from core import hookimpl
from core.context import CurrentOrganization, system_context
from core.contracts import PluginInfo
from core.tables import Membership
from core.testing import EventRecorder, client_for, login, refresh_tenants
from plugins.team.tables import Invitation
from plugins.team.tests.conftest import invite_link, membership_id, post


async def test_every_change_emits_an_event_with_before_and_after(portal_app_factory, make_tenant):
    recorder = EventRecorder()
    app = await portal_app_factory(recorder)
    tenant = await make_tenant(plugins=["team", "recorder"])
    base = f"/o/{tenant.org_slug}/team"
    org_name = f"Org {tenant.slug}"
    async with client_for(app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        await post(owner, f"{base}/invitations", {"emails": "e1@example.com, e2@example.com", "role": "member"},
                   token_from=base)
        rows = {r["email"]: r["id"] for r in await Invitation.select().where(Invitation.tenant == tenant.id)}
        await post(owner, f"{base}/invitations/{rows['e1@example.com']}/resend", token_from=base)
        await post(owner, f"{base}/invitations/{rows['e2@example.com']}/revoke", token_from=base)
        _, token = await invite_link(app, tenant.id, "e1@example.com")
        async with client_for(app, tenant.host) as newcomer:
            await post(newcomer, f"/invite/{token}", {"name": "E One", "password": "a-long-password",
                                                     "confirm_password": "a-long-password"}, token_from="/login")
        await post(owner, f"{base}/members/{await membership_id(tenant.org_id, 'e1@example.com')}/role",
                   {"role": "viewer"}, token_from=base)
        await post(owner, f"{base}/members/{await membership_id(tenant.org_id, tenant.email('viewer'))}/remove",
                   token_from=base)
        await post(owner, f"{base}/transfer", {"email": tenant.email("admin"), "confirm": org_name},
                   token_from=base)
    async with client_for(app, tenant.host) as billing:
        await login(billing, tenant.email("billing"))
        await post(billing, f"{base}/leave", token_from=base)
    team_events = [e for e in recorder.events if e.type.startswith("team.")]
    by_type = {}
    for event in team_events:
        by_type.setdefault(event.type, []).append(event)
    assert set(by_type) == {
        "team.invitation.created", "team.invitation.resent", "team.invitation.revoked", "team.invitation.accepted",
        "team.member.role_changed", "team.member.removed", "team.member.left", "team.ownership.transferred",
    }
    assert len(by_type["team.invitation.created"]) == 2
    created = by_type["team.invitation.created"][0]
    assert created.after["role"] == "member" and created.before is None
    assert created.actor.display == tenant.email("owner") and created.organization_id == tenant.org_id
    assert by_type["team.invitation.resent"][0].after["send_count"] == 2
    assert by_type["team.invitation.revoked"][0].after == {"status": "revoked"}
    accepted = by_type["team.invitation.accepted"][0]
    assert accepted.actor.display == "e1@example.com" and accepted.organization_id == tenant.org_id
    assert accepted.before == {"status": "pending"} and accepted.after["role"] == "member"
    role = by_type["team.member.role_changed"][0]
    assert role.before == {"role": "member"} and role.after == {"role": "viewer"}
    removed = by_type["team.member.removed"][0]
    assert removed.before["email"] == tenant.email("viewer") and removed.after is None
    transferred = by_type["team.ownership.transferred"][0]
    assert transferred.before["owner"] == tenant.email("owner") and transferred.after["owner"] == tenant.email("admin")
    assert by_type["team.member.left"][0].before == {"role": "billing"}
    assert all(e.tenant_id == tenant.id for e in team_events)


async def test_failed_event_rolls_the_change_back(portal_app_factory, make_tenant):
    class Failing(EventRecorder):
        @hookimpl
        def portal_plugin(self):
            return PluginInfo("failing", "Failing", "1.0.0")

        @hookimpl
        def portal_event(self, event):
            if event.type == "team.member.role_changed":
                raise RuntimeError("audit store down")

    app = await portal_app_factory(Failing())
    tenant = await make_tenant(plugins=["team", "failing"])
    base = f"/o/{tenant.org_slug}/team"
    target = await membership_id(tenant.org_id, tenant.email("viewer"))
    async with client_for(app, tenant.host) as owner:
        await login(owner, tenant.email("owner"))
        response = await post(owner, f"{base}/members/{target}/role", {"role": "member"}, token_from=base)
        assert response.status_code == 500
    row = await Membership.select(Membership.role).where(Membership.id == target).first()
    assert row["role"] == "viewer"


async def test_nav_card_and_permissions(portal_app, make_tenant):
    import plugins.team as team

    perms = {p.name: p.default_roles for p in team.portal_permissions()}
    assert perms["team.read"] == {"owner", "admin", "billing", "member", "viewer"}
    assert perms["team.manage"] == {"owner", "admin"}
    tenant = await make_tenant(plugins=["team"])
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("admin"))
        await post(client, f"/o/{tenant.org_slug}/team/invitations", {"emails": "p@example.com", "role": "viewer"},
                   token_from=f"/o/{tenant.org_slug}/team")
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert "5 members" in overview.text and "1 pending invitation" in overview.text
        assert "Manage team" in overview.text
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("viewer"))
        overview = await client.get(f"/o/{tenant.org_slug}/")
        assert "See members" in overview.text and f'href="/o/{tenant.org_slug}/team"' in overview.text


async def test_demo_seed_is_idempotent(portal_app, make_tenant):
    from core.tables import Organization

    tenant = await make_tenant(plugins=["team"])
    await refresh_tenants(portal_app)
    record = portal_app.state.portal.directory.lookup(tenant.host)
    row = await Organization.select().where(Organization.id == tenant.org_id).first()
    org = CurrentOrganization(row["id"], row["slug"], row["name"])
    ctx = system_context(portal_app.state.portal, record,
                         organization=CurrentOrganization(org["id"], org["slug"], org["name"]))
    for _ in range(2):
        await portal_app.state.portal.plugins.call("portal_seed_demo", tenant=record, strict=True, ctx=ctx, org=org)
        assert await Membership.count().where(Membership.organization == tenant.org_id) == 10
        assert await Invitation.count().where(Invitation.organization == tenant.org_id) == 3
    async with client_for(portal_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = await client.get(f"/o/{tenant.org_slug}/team")
        assert "SSO (SAML)" in page.text and "hannah@" in page.text
