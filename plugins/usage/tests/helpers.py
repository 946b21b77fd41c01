"""Small helpers shared by the usage tests."""

from __future__ import annotations

import uuid
from typing import Any

from core.context import CurrentOrganization, system_context
from core.db import utcnow
from core.tables import Membership, Organization, User


async def add_organization(tenant_id: uuid.UUID, slug: str | None = None) -> CurrentOrganization:
    """Another organization in the same tenant (make_tenant creates one)."""
    slug = slug or "org-" + uuid.uuid4().hex[:8]
    org_id = uuid.uuid4()
    await Organization.insert(Organization(id=org_id, tenant=tenant_id, slug=slug, name=slug.title(),
                                           created_at=utcnow()))
    return CurrentOrganization(org_id, slug, slug.title())


async def add_member(tenant_id: uuid.UUID, org_id: uuid.UUID, email: str, role: str) -> None:
    """Give an existing user of the tenant a role in ``org_id``."""
    user = await User.select(User.id).where(User.tenant == tenant_id, User.email == email).first()
    await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant_id, organization=org_id, user=user["id"],
                                       role=role, created_at=utcnow()))


def ctx_for(app: Any, tenant: Any, org: CurrentOrganization | None = None) -> Any:
    """A system context of a test tenant (as the CLI or a worker would have)."""
    runtime = app.state.portal
    record = runtime.directory.get(tenant.id)
    org = org or CurrentOrganization(tenant.org_id, tenant.org_slug, f"Org {tenant.slug}")
    return system_context(runtime, record, organization=org)
