"""Seat limits come from ``portal_plan_limits``; pending invitations hold seats; the plugin reports ``seats``."""

from __future__ import annotations

import pytest

from core import hookimpl
from core.contracts import PluginInfo, UsageMetric
from core.testing import client_for, login
from plugins.team.tables import Invitation
from plugins.team.tests.conftest import post


def plan_plugin(seats):
    """A stand-in billing plugin whose plan allows ``seats`` seats."""

    class Plan:
        @hookimpl
        def portal_plugin(self):
            return PluginInfo("test-plan", "Test plan", "1.0.0")

        @hookimpl
        async def portal_plan_limits(self, ctx, org):
            return {"seats": seats} if seats != "missing" else {"api_calls": 10}

    return Plan()


async def test_seat_limit_counts_members_and_pending_invitations(portal_app_factory, make_tenant):
    app = await portal_app_factory(plan_plugin(7))  # 5 members already
    tenant = await make_tenant(plugins=["team", "test-plan"], branding={"support_email": "help@brand.example"})
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = await client.get(base)
        assert "Seats: 5 of 7 used" in page.text
        too_many = await post(client, f"{base}/invitations", {"emails": "a@x.io b@x.io c@x.io", "role": "member"},
                              token_from=base)
        assert too_many.status_code == 409
        assert "Your plan includes 7 seats and 5 are in use" in too_many.text
        assert "Contact help@brand.example to get more seats" in too_many.text
        assert await Invitation.count().where(Invitation.tenant == tenant.id) == 0
        ok = await post(client, f"{base}/invitations", {"emails": "a@x.io b@x.io", "role": "member"}, token_from=base)
        assert ok.status_code == 302
        full = await post(client, f"{base}/invitations", {"emails": "c@x.io", "role": "member"}, token_from=base)
        assert full.status_code == 409 and "2 pending invitations" in full.text
        # revoking frees the seat
        row = await Invitation.select(Invitation.id).where(
            Invitation.email == "a@x.io", Invitation.tenant == tenant.id).first()
        await post(client, f"{base}/invitations/{row['id']}/revoke", token_from=base)
        again = await post(client, f"{base}/invitations", {"emails": "c@x.io", "role": "member"}, token_from=base)
        assert again.status_code == 302


async def test_billing_enabled_points_to_the_upgrade(portal_app_factory, make_tenant):
    app = await portal_app_factory(plan_plugin(5))
    tenant = await make_tenant(plugins=["team", "billing", "test-plan"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        response = await post(client, f"{base}/invitations", {"emails": "a@x.io", "role": "member"}, token_from=base)
    if "billing" not in app.state.portal.plugins.plugins:
        pytest.skip("billing plugin not installed")
    assert response.status_code == 409 and f"/o/{tenant.org_slug}/billing" in response.text


async def test_unlimited_plans(portal_app_factory, make_tenant):
    for seats in (-1, None, "missing"):
        app = await portal_app_factory(plan_plugin(seats))
        tenant = await make_tenant(plugins=["team", "test-plan"])
        base = f"/o/{tenant.org_slug}/team"
        async with client_for(app, tenant.host) as client:
            await login(client, tenant.email("owner"))
            assert "Unlimited seats" in (await client.get(base)).text
            response = await post(client, f"{base}/invitations", {"emails": "a@x.io b@x.io", "role": "viewer"},
                                  token_from=base)
            assert response.status_code == 302, seats


async def test_usage_metric_hook(portal_app_factory, make_tenant):
    from core.context import CurrentOrganization, system_context
    from core.testing import refresh_tenants

    app = await portal_app_factory(plan_plugin(10))
    tenant = await make_tenant(plugins=["team", "test-plan"])
    base = f"/o/{tenant.org_slug}/team"
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        await post(client, f"{base}/invitations", {"emails": "a@x.io", "role": "viewer"}, token_from=base)
    await refresh_tenants(app)
    record = app.state.portal.directory.lookup(tenant.host)
    org = CurrentOrganization(tenant.org_id, tenant.org_slug, "Org")
    ctx = system_context(app.state.portal, record, organization=org)
    results = dict(await app.state.portal.plugins.call("portal_usage_metrics", tenant=record, ctx=ctx, org=org))
    assert results["team"] == [UsageMetric("seats", "Seats", used=6, limit=10, unit="seats")]
    # a dict row works as well (the hook is called with whatever the caller has)
    as_row = dict(await app.state.portal.plugins.call("portal_usage_metrics", tenant=record, ctx=ctx,
                                                      org={"id": tenant.org_id, "slug": tenant.org_slug}))
    assert as_row["team"][0].used == 6


async def test_demo_team_fits_the_plan_and_leaves_a_seat_to_invite(portal_app_factory, make_tenant):
    from core.context import CurrentOrganization, system_context
    from core.tables import Membership
    from core.testing import refresh_tenants

    app = await portal_app_factory(plan_plugin(9))  # 5 members already: room for 3 more, one stays free
    tenant = await make_tenant(plugins=["team", "test-plan"])
    await refresh_tenants(app)
    record = app.state.portal.directory.lookup(tenant.host)
    org = CurrentOrganization(tenant.org_id, tenant.org_slug, "Org")
    ctx = system_context(app.state.portal, record, organization=org)
    for _ in range(2):
        await app.state.portal.plugins.call("portal_seed_demo", tenant=record, strict=True, ctx=ctx, org=org)
        members = await Membership.count().where(Membership.organization == tenant.org_id)
        invitations = await Invitation.count().where(Invitation.organization == tenant.org_id)
        assert (members, invitations) == (7, 1)
    async with client_for(app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        assert "Seats: 8 of 9 used" in (await client.get(f"/o/{tenant.org_slug}/team")).text
