"""Customers: plan, status, seats, monthly revenue (``portal_billing_summaries``), activity, search, pages, MRR."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core import hookimpl
from core.console.customers import PAGE_SIZE
from core.contracts import BillingSummary, PluginInfo
from core.db import utcnow
from core.tables import Membership, Organization


class Summaries:
    """A billing stand-in: what each organization pays, by organization id."""

    def __init__(self) -> None:
        self.by_org: dict[uuid.UUID, BillingSummary] = {}
        self.calls = 0

    @hookimpl
    def portal_plugin(self) -> Any:
        return PluginInfo("summaries", "Summaries", "1.0", "Billing summaries for tests.")

    @hookimpl
    async def portal_billing_summaries(self, ctx: Any, orgs: list[Any]) -> dict[uuid.UUID, BillingSummary]:
        self.calls += 1
        assert ctx.tenant is not None and all(org.slug for org in orgs)
        return {org.id: self.by_org[org.id] for org in orgs if org.id in self.by_org}


def _summary(plan: str, status: str, currency: str, monthly: str, interval: str = "month") -> BillingSummary:
    amount = Decimal(monthly) * (12 if interval == "year" else 1)
    return BillingSummary(plan.lower(), plan, status, currency, amount, interval, Decimal(monthly))


async def _org(tenant, slug: str, name: str, age_days: int = 0) -> uuid.UUID:
    org_id = uuid.uuid4()
    await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug=slug, name=name,
                                           created_at=utcnow() - timedelta(days=age_days)))
    return org_id


def _row(html: str, slug: str) -> str:
    return html.split(f'data-testid="org-{slug}"')[1].split("</tr>")[0]


async def test_customers_plan_status_seats_revenue_and_totals(portal_app_factory, make_tenant, admin_client):
    billing = Summaries()
    app = await portal_app_factory(billing)
    tenant = await make_tenant(plugins=["summaries"], settings={"billing": {"locale": "de_DE"}})
    other = await make_tenant(plugins=["summaries"])
    zeta = await _org(tenant, "zeta-labs", "Zeta Labs", age_days=3)
    yearly = await _org(tenant, "yearly-co", "Yearly Co", age_days=4)
    gone = await _org(tenant, "gone-gmbh", "Gone GmbH", age_days=5)
    dollars = await _org(tenant, "dollar-inc", "Dollar Inc", age_days=6)
    billing.by_org.update({
        tenant.org_id: _summary("Pro", "active", "EUR", "49"),
        zeta: _summary("Team", "trialing", "EUR", "20"),
        yearly: _summary("Scale", "past_due", "EUR", "100.50", interval="year"),
        gone: _summary("Pro", "canceled", "EUR", "49"),
        dollars: _summary("Pro", "active", "USD", "1234.5"),
        other.org_id: _summary("Pro", "active", "EUR", "999"),
    })
    await Membership.update({Membership.last_active_at: datetime(2026, 3, 4, 5, 6, tzinfo=UTC)}).where(
        Membership.organization == tenant.org_id)
    async with admin_client(app, tenant) as client:
        page = await client.get("/admin/customers")
        assert page.status_code == 200
        assert "5 in all" in page.text and f"Org {other.slug}" not in page.text
        mine = _row(page.text, tenant.org_slug)
        assert "Pro" in mine and "active" in mine and "<td>5</td>" in mine  # five members, one per role
        assert "49,00\xa0€" in mine and "2026-03-04 05:06 UTC" in mine
        assert "trialing" in _row(page.text, "zeta-labs") and "<td>0</td>" in _row(page.text, "zeta-labs")
        assert "past due" in _row(page.text, "yearly-co") and "100,50\xa0€" in _row(page.text, "yearly-co")
        canceled = _row(page.text, "gone-gmbh")
        assert "canceled" in canceled and "€" not in canceled  # no revenue from a canceled subscription
        # MRR per currency over every organization: 49 + 20 + 100.50 EUR, 1234.50 USD; the other tenant's not.
        assert 'data-testid="mrr-EUR">169,50\xa0€' in page.text
        assert 'data-testid="mrr-USD">1.234,50\xa0$' in page.text
        assert 'data-testid="paying">4<' in page.text
        assert billing.calls == 1  # every organization in one question, not one per organization

        found = await client.get("/admin/customers", params={"q": "ZETA"})
        assert "Zeta Labs" in found.text and f"Org {tenant.slug}" not in found.text
        assert 'data-testid="mrr-EUR">20,00\xa0€' in found.text and "mrr-USD" not in found.text
        assert "No match" in (await client.get("/admin/customers", params={"q": "nothing-like-this"})).text
        assert (await client.get("/admin/customers", params={"q": "%_\\"})).status_code == 200


async def test_customers_without_billing_and_pages(portal_app_factory, make_tenant, admin_client):
    app = await portal_app_factory(Summaries())
    tenant = await make_tenant(plugins=[])
    for index in range(PAGE_SIZE + 3):
        await _org(tenant, f"bulk-{index:03d}", f"Bulk {index:03d}", age_days=index + 1)
    async with admin_client(app, tenant) as client:
        first = await client.get("/admin/customers")
        assert "Revenue appears here when the Billing section is on." in first.text
        assert "Page 1 of 2" in first.text and "no plan" in first.text
        assert "bulk-000" in first.text and "bulk-027" not in first.text
        second = await client.get("/admin/customers", params={"page": 2})
        assert "Page 2 of 2" in second.text and "bulk-027" in second.text and "bulk-000" not in second.text
        beyond = await client.get("/admin/customers", params={"page": 99})
        assert beyond.status_code == 200 and "Page 2 of 2" in beyond.text
        assert (await client.get("/admin/customers", params={"page": "x"})).status_code == 400
