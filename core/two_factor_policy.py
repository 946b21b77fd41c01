""""This organization requires two-factor authentication": the switch and its enforcement.

An owner turns it on from their Account security page (they must have 2FA themselves,
so they cannot lock themselves out). From then on a member without 2FA who opens any
``/o/{org}/...`` page is sent to the enrolment page (``organization_member`` calls
``enforce``); API keys are not affected (they are not people). Sessions that signed in
through single sign-on are exempt: the company's identity provider owns their second factor.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar.exceptions import PermissionDeniedException

from core.context import RequestContext
from core.tables import Membership, Organization
from core.totp import is_enabled

PASSWORD_METHODS = frozenset({None, "password"})


class TwoFactorRequired(PermissionDeniedException):
    """The organization requires 2FA and this user has none: pages redirect to ``redirect_to``."""

    def __init__(self, org_slug: str) -> None:
        super().__init__(detail="This organization requires two-factor authentication. Set it up in Account "
                                "security to continue.")
        self.redirect_to = f"/account/security/2fa/setup?required={org_slug}"


async def enforce(ctx: RequestContext) -> None:
    """Raise ``TwoFactorRequired`` when the current organization demands 2FA the user lacks."""
    if ctx.organization is None or ctx.user is None or ctx.actor_override is not None:
        return
    if ctx.auth_method not in PASSWORD_METHODS or ctx.cache.get("two_factor_ok"):
        return
    required = ctx.cache.get("org_requires_2fa")  # read with the membership (core.identity.resolve_membership)
    if required is None:
        row = await Organization.select(Organization.require_2fa).where(
            Organization.id == ctx.organization.id, Organization.tenant == ctx.tenant.id).first()
        required = bool(row and row["require_2fa"])
    if required and not await is_enabled(ctx.tenant.id, ctx.user.id):
        raise TwoFactorRequired(ctx.organization.slug)
    ctx.cache["two_factor_ok"] = True


async def owned_organizations(tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """Organizations the user owns, with the switch and how many members still lack 2FA."""
    owned = await Membership.select(
        Membership.organization.id.as_alias("id"), Membership.organization.slug.as_alias("slug"),
        Membership.organization.name.as_alias("name"), Membership.organization.require_2fa.as_alias("require_2fa"),
    ).where(Membership.tenant == tenant_id, Membership.user == user_id, Membership.role == "owner").order_by(
        Membership.organization.name)
    for org in owned:
        org["members"] = await Membership.count().where(Membership.organization == org["id"])
        rows = await Membership.raw(
            'SELECT count(*) AS n FROM membership m JOIN totp_credential t ON t."user" = m."user" '
            "WHERE m.organization = {} AND t.confirmed_at IS NOT NULL", org["id"])
        org["without_2fa"] = org["members"] - int(rows[0]["n"])
    return owned


async def is_owner(tenant_id: uuid.UUID, user_id: uuid.UUID, org_slug: str) -> dict[str, Any] | None:
    """The organization (id, name, switch) when the user owns it on this tenant, else ``None``."""
    return await Membership.select(
        Membership.organization.id.as_alias("id"), Membership.organization.name.as_alias("name"),
        Membership.organization.require_2fa.as_alias("require_2fa"),
    ).where(Membership.tenant == tenant_id, Membership.user == user_id, Membership.role == "owner",
            Membership.organization.slug == org_slug).first()


async def set_required(org_id: uuid.UUID, required: bool) -> None:
    """Flip the switch."""
    await Organization.update({Organization.require_2fa: required}).where(Organization.id == org_id)
