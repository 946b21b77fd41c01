"""Demo history for ``make run``: a few entries an organization admin would recognise.

Recorded through ``core.events.emit`` like any change, so the chain is real. Idempotent: an
organization that already has audit rows gets nothing.
"""

from __future__ import annotations

from typing import Any

from core.context import Actor
from core.db import atomic
from core.events import Target, emit
from core.tables import Membership
from plugins.audit.tables import AuditEvent


async def seed_demo(ctx: Any, org: dict[str, Any]) -> None:
    """Record invitations, a role change and an API key for the demo organization's members."""
    if await AuditEvent.exists().where(AuditEvent.tenant == ctx.tenant.id, AuditEvent.organization == org["id"]):
        return
    members = await Membership.select(Membership.role, Membership.user.id, Membership.user.email).where(
        Membership.organization == org["id"])
    owner = next((m for m in members if m["role"] == "owner"), None)
    if owner is None:
        return
    by = Actor("user", str(owner["user.id"]), owner["user.email"], "password")
    async with atomic():
        for member in members:
            if member is owner:
                continue
            await emit(ctx, "team.invitation.sent", actor=by, organization_id=org["id"],
                       target=Target("invitation", None, member["user.email"]),
                       after={"email": member["user.email"], "role": "member"})
            await emit(ctx, "team.member.joined", actor=Actor("user", str(member["user.id"]), member["user.email"],
                                                               "password"),
                       organization_id=org["id"], target=Target("membership", None, member["user.email"]),
                       after={"role": "member"})
            if member["role"] != "member":
                await emit(ctx, "team.member.role_changed", actor=by, organization_id=org["id"],
                           target=Target("membership", None, member["user.email"]),
                           before={"role": "member"}, after={"role": member["role"]})
        await emit(ctx, "api-keys.key.created", actor=by, organization_id=org["id"],
                   target=Target("api_key", None, "CI deploy key"),
                   after={"name": "CI deploy key", "key_prefix": "pk_live_3f9a", "scopes": ["usage:write"],
                          "secret": "pk_live_3f9a-not-shown"})
