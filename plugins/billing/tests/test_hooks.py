"""Billing through the hook contract: ``portal_billing_summaries`` as usage and the console call it, and
``portal_plan_change_allowed`` asked for every offered plan (billing's own tenant rule, team's seat rule)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from core.context import CurrentOrganization, system_context
from core.contracts import BillingSummary
from core.db import utcnow
from core.tables import Membership, Organization, User
from core.testing import client_for, csrf_token, login
from plugins.billing.tables import Subscription
from plugins.billing.tests.conftest import PLANS

PRICED = [dict(PLANS[0], unit_prices={"api_calls": 0.0005, "seats": 9}),
          dict(PLANS[1], unit_prices={"api_calls": "0.0004"}),
          {"id": "annual", "name": "Annual", "price": 120000, "currency": "EUR", "interval": "year",
           "limits": {"seats": 50}}]


async def summary_of(app, tenant, org_id=None):
    runtime = app.state.portal
    record = runtime.directory.get(tenant.id)
    org = await Organization.select().where(Organization.id == (org_id or tenant.org_id)).first()
    organization = CurrentOrganization(org["id"], org["slug"], org["name"])
    ctx = system_context(runtime, record, organization=organization)
    summaries = await runtime.plugins.first("portal_billing_summaries", tenant=record, ctx=ctx, orgs=[organization])
    return (summaries or {}).get(organization.id)


async def set_sub(tenant, **values):
    await Subscription.update({getattr(Subscription, k): v for k, v in values.items()}).where(
        Subscription.organization == tenant.org_id)


async def test_summary_amounts_unit_prices_and_period(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works", plans=PRICED)  # past due on Starter
    summary = await summary_of(billing_app, tenant)
    assert isinstance(summary, BillingSummary)
    assert (summary.plan_id, summary.plan_name, summary.status, summary.currency) == (
        "starter", "Starter", "past_due", "EUR")
    assert summary.amount == Decimal("19.00") and summary.monthly_amount == Decimal("19.00")
    assert summary.interval == "month"
    assert summary.unit_prices == {"api_calls": Decimal("0.0005"), "seats": Decimal("9")}
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert summary.period_end > summary.period_start and summary.period_end.tzinfo is not None
    assert abs((summary.period_end - sub["current_period_end"].replace(tzinfo=summary.period_end.tzinfo)
                ).total_seconds()) < 1
    await set_sub(tenant, plan_id="annual")
    annual = await summary_of(billing_app, tenant)
    assert (annual.amount, annual.interval, annual.monthly_amount, annual.unit_prices) == (
        Decimal("1200.00"), "year", Decimal("100.00"), {})


@pytest.mark.parametrize(("values", "status"), [
    ({"status": "active"}, "active"),
    ({"status": "trialing"}, "trialing"),
    ({"status": "past_due"}, "past_due"),
    ({"status": "active", "cancel_at_period_end": True}, "cancelling"),
    ({"status": "canceled"}, "cancelled"),
    ({"status": "active", "pause_starts_at": "past", "pause_resumes_at": "future"}, "paused"),
    ({"status": "active", "pause_starts_at": "future", "pause_resumes_at": "later"}, "active"),
    ({"status": "active", "pause_starts_at": "past"}, "paused"),  # no resume date: paused until resumed
    ({"status": "active", "pause_starts_at": "future"}, "active"),
])
async def test_summary_status_words(billing_app, billing_tenant, values, status):
    tenant = await billing_tenant("rocket-labs")
    now = utcnow()
    moments = {"past": now - timedelta(days=1), "future": now + timedelta(days=3), "later": now + timedelta(days=40)}
    await set_sub(tenant, **{k: moments.get(v, v) if isinstance(v, str) and k.startswith("pause") else v
                             for k, v in values.items()})
    assert (await summary_of(billing_app, tenant)).status == status


async def test_summary_none_without_subscription_or_known_plan_and_isolated(billing_app, billing_tenant):
    bare = await billing_tenant(None)
    assert await summary_of(billing_app, bare) is None
    seeded = await billing_tenant("rocket-labs")
    # another tenant's organization: the bare tenant's context never sees the seeded row
    assert await summary_of(billing_app, bare, seeded.org_id) is None
    await set_sub(seeded, plan_id="withdrawn")
    assert await summary_of(billing_app, seeded) is None


async def add_members(tenant, count):
    for _ in range(count):
        user = User(id=uuid.uuid4(), tenant=tenant.id, email=f"{uuid.uuid4().hex[:10]}@extra.example",
                    created_at=utcnow())
        await User.insert(user)
        await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant.id, organization=tenant.org_id,
                                           user=user.id, role="member", created_at=utcnow()))


async def test_team_refusal_beside_the_plan_and_on_confirm(billing_app, billing_tenant):
    tenant = await billing_tenant("rocket-labs", plugins=["billing", "team"])  # Business, 5 members
    await add_members(tenant, 7)
    org = f"/o/{tenant.org_slug}/billing"
    async with client_for(billing_app, tenant.host) as client:
        await login(client, tenant.email("owner"))
        page = (await client.get(org + "/plans")).text
        starter = page[page.index('data-plan="starter"'):page.index('data-plan="team"')]
        assert "You have 12 members; Starter allows 5 seats. Remove members first." in starter
        assert "disabled" in starter and "/plans/starter" not in starter
        assert "/plans/team" in page[page.index('data-plan="team"'):]
        token = await csrf_token(client, org + "/plans")
        refused = await client.post(org + "/plans/starter", data={"_csrf_token": token})
        assert refused.status_code == 400 and "Remove members first" in refused.text
        assert (await client.get(org + "/plans/starter")).status_code == 400
    sub = await Subscription.select().where(Subscription.organization == tenant.org_id).first()
    assert (sub["plan_id"], sub["pending_plan_id"]) == ("business", None)


async def test_tenant_rule_is_billings_own_hook(billing_app, billing_tenant):
    tenant = await billing_tenant("anvil-works", allowed_plan_changes={"starter": ["team"]})
    runtime = billing_app.state.portal
    record = runtime.directory.get(tenant.id)
    ctx = system_context(runtime, record)
    from core.contracts import PlanOffer

    ask = lambda new: runtime.plugins.call(  # noqa: E731
        "portal_plan_change_allowed", tenant=record, ctx=ctx, org=CurrentOrganization(tenant.org_id, "o", "O"),
        current_plan=PlanOffer("starter", "Starter"), new_plan=PlanOffer(new, new.title()))
    assert await ask("team") == []
    assert await ask("business") == [("billing", "Not available for your organization.")]
