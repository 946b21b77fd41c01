"""Customers: the tenant's organizations with member counts and creation dates, searchable, per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from core.db import utcnow
from core.tables import Membership, Organization


async def test_customers_list_and_search(portal_app, make_tenant, admin_client):
    tenant = await make_tenant()
    other = await make_tenant()
    await Organization.insert(Organization(id=uuid.uuid4(), tenant=tenant.id, slug="zeta-labs", name="Zeta Labs",
                                           created_at=utcnow()))
    await Membership.update({Membership.last_active_at: datetime(2026, 3, 4, 5, 6, tzinfo=UTC)}).where(
        Membership.organization == tenant.org_id)
    async with admin_client(portal_app, tenant) as client:
        page = await client.get("/admin/customers")
        assert "2026-03-04 05:06 UTC" in page.text
        assert page.status_code == 200
        assert f"Org {tenant.slug}" in page.text and "Zeta Labs" in page.text
        assert f"Org {other.slug}" not in page.text
        assert "2 in all" in page.text
        row = page.text.split(f'data-testid="org-{tenant.org_slug}"')[1].split("</tr>")[0]
        assert "<td>5</td>" in row  # five members, one per role
        assert "<td>0</td>" in page.text.split('data-testid="org-zeta-labs"')[1].split("</tr>")[0]
        found = await client.get("/admin/customers", params={"q": "zeta"})
        assert "Zeta Labs" in found.text and f"Org {tenant.slug}" not in found.text
        none = await client.get("/admin/customers", params={"q": "nothing-like-this"})
        assert "No match" in none.text
        wildcard = await client.get("/admin/customers", params={"q": "%"})
        assert wildcard.status_code == 200
