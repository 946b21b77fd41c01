"""Helpers shared by the team plugin's tests (the core fixtures come from ``core.testing``)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from core.tables import DevMail, Membership, Organization, User
from core.testing import deliver_outbox as deliver

LINK = re.compile(r"(https?://[^/\s]+)/invite/([A-Za-z0-9_\-]+)")




async def mails_to(tenant_id: Any, email: str) -> list[dict[str, Any]]:
    """Mails the dev backend 'sent' to ``email`` on a tenant, oldest first."""
    return await DevMail.select().where(DevMail.tenant == tenant_id, DevMail.recipient == email).order_by(
        DevMail.created_at)


async def invite_link(app: Any, tenant_id: Any, email: str) -> tuple[str, str]:
    """(base URL, token) of the newest invitation mail to ``email``."""
    await deliver(app)
    mails = await mails_to(tenant_id, email)
    assert mails, f"no mail to {email}"
    match = LINK.search(mails[-1]["text"])
    assert match, mails[-1]["text"]
    return match.group(1), match.group(2)


async def role_of(org_id: Any, email: str) -> str | None:
    """The role of ``email`` in an organization, None when not a member."""
    row = await Membership.select(Membership.role).where(
        Membership.organization == org_id, Membership.user.email == email).first()
    return row["role"] if row else None


async def add_member(tenant: Any, email: str, role: str, *, org_id: Any = None, password_hash: str | None = None
                     ) -> Any:
    """Create a user of the tenant and make them a member (bypassing invitations, for setup)."""
    import uuid

    from core.db import utcnow

    user = await User.select(User.id).where(User.tenant == tenant.id, User.email == email).first()
    user_id = user["id"] if user else uuid.uuid4()
    if user is None:
        await User.insert(User(id=user_id, tenant=tenant.id, email=email, name=email.split("@")[0].title(),
                               password_hash=password_hash, created_at=utcnow()))
    membership_id = uuid.uuid4()
    await Membership.insert(Membership(id=membership_id, tenant=tenant.id, organization=org_id or tenant.org_id,
                                       user=user_id, role=role, created_at=utcnow()))
    return membership_id


async def membership_id(org_id: Any, email: str) -> Any:
    """The membership id of ``email`` in an organization."""
    row = await Membership.select(Membership.id).where(
        Membership.organization == org_id, Membership.user.email == email).first()
    return row["id"]


async def second_org(tenant: Any, slug: str = "other-org") -> Any:
    """Another organization on the same tenant (no members)."""
    import uuid

    from core.db import utcnow

    org_id = uuid.uuid4()
    await Organization.insert(Organization(id=org_id, tenant=tenant.id, slug=slug, name="Other Org",
                                           created_at=utcnow()))
    return org_id


async def post(client: httpx.AsyncClient, path: str, data: dict[str, Any] | None = None, *,
               token_from: str, htmx: bool = False) -> httpx.Response:
    """A form post with the page's CSRF token (as htmx would send it when ``htmx``)."""
    from core.testing import csrf_token

    token = await csrf_token(client, token_from)
    headers = {"HX-Request": "true", "x-csrftoken": token} if htmx else {}
    return await client.post(path, data={"_csrf_token": token, **(data or {})}, headers=headers)


@pytest.fixture
def team_base():
    """``team_base(tenant)`` → ``/o/{org}/team``."""
    return lambda tenant: f"/o/{tenant.org_slug}/team"
