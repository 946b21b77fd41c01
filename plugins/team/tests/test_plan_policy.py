"""``portal_plan_change_allowed``: a plan with fewer seats than the organization has members is refused."""

from __future__ import annotations

import uuid

from core.context import CurrentOrganization, system_context
from core.contracts import PlanOffer
from core.db import utcnow
from core.tables import Membership, Organization, User

STARTER = PlanOffer("starter", "Starter", {"seats": 5, "api_calls": 10000})
TEAM = PlanOffer("team", "Team", {"seats": 20})
UNLIMITED = PlanOffer("business", "Business", {"seats": -1})
NO_SEATS = PlanOffer("api", "API only", {"api_calls": 100})


async def add_members(tenant, org_id, count):
    """``count`` more people in the organization."""
    for _ in range(count):
        user = User(id=uuid.uuid4(), tenant=tenant.id, email=f"{uuid.uuid4().hex[:10]}@extra.example",
                    created_at=utcnow())
        await User.insert(user)
        await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant.id, organization=org_id, user=user.id,
                                           role="member", created_at=utcnow()))


async def ask(app, tenant, org_id, new_plan, current=None):
    """Call the hook as the billing plugin does: every implementation, for one plan."""
    runtime = app.state.portal
    record = runtime.directory.get(tenant.id)
    org = await Organization.select().where(Organization.id == org_id).first()
    organization = CurrentOrganization(org["id"], org["slug"], org["name"])
    ctx = system_context(runtime, record, organization=organization)
    results = await runtime.plugins.call("portal_plan_change_allowed", tenant=record, ctx=ctx, org=organization,
                                         current_plan=current, new_plan=new_plan)
    return [message for slug, message in results if slug == "team"]  # None (allowed) is left out


async def test_refuses_a_plan_smaller_than_the_team(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["team"])  # 5 members, one per role
    assert await ask(portal_app, tenant, tenant.org_id, STARTER, TEAM) == []  # exactly full is fine
    await add_members(tenant, tenant.org_id, 7)
    assert await ask(portal_app, tenant, tenant.org_id, STARTER, TEAM) == [
        "You have 12 members; Starter allows 5 seats. Remove members first."]
    assert await ask(portal_app, tenant, tenant.org_id, TEAM, STARTER) == []
    assert await ask(portal_app, tenant, tenant.org_id, UNLIMITED) == []
    assert await ask(portal_app, tenant, tenant.org_id, NO_SEATS) == []
    one_seat = PlanOffer("solo", "Solo", {"seats": 1})
    assert await ask(portal_app, tenant, tenant.org_id, one_seat) == [
        "You have 12 members; Solo allows 1 seat. Remove members first."]


async def test_counts_only_this_organization(portal_app, make_tenant):
    crowded = await make_tenant(plugins=["team"])
    small = await make_tenant(plugins=["team"])
    await add_members(crowded, crowded.org_id, 7)
    assert await ask(portal_app, small, small.org_id, STARTER) == []
    assert await ask(portal_app, crowded, crowded.org_id, STARTER) != []


async def test_not_asked_where_team_is_disabled(portal_app, make_tenant):
    tenant = await make_tenant(plugins=["audit"])
    await add_members(tenant, tenant.org_id, 7)
    assert await ask(portal_app, tenant, tenant.org_id, STARTER) == []
