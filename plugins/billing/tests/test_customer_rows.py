"""One billing customer per organization, whatever the timing of the requests that create it."""

from __future__ import annotations

import asyncio

from core.context import system_context
from plugins.billing.service import ensure_customer
from plugins.billing.tables import BillingCustomer


async def test_racing_first_visits_create_one_customer(billing_app, billing_tenant):
    tenant = await billing_tenant(profile=None)
    ctx = system_context(billing_app.state.portal, billing_app.state.portal.directory.get(tenant.id))
    rows = await asyncio.gather(*(ensure_customer(ctx, tenant.org_id, "Racing Org") for _ in range(5)))
    assert len({row["id"] for row in rows}) == 1
    assert await BillingCustomer.count().where(BillingCustomer.organization == tenant.org_id) == 1
