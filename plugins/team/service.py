"""Changes to who belongs to an organization: role changes, removal, leaving, ownership transfer.

Every change runs in one transaction with its event (the audit record commits
with it). The organization row is locked first on PostgreSQL (SQLite transactions
already take the write lock up front), so two concurrent demotions can never both
see "there is another owner" and leave the organization without one.

Removing a member ends *all* of that user's sessions on the tenant at once: a
session is not bound to one organization, and ending them all is the simplest
rule that is certainly correct. The person signs in again to reach their other
organizations.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.context import RequestContext
from core.db import atomic, is_sqlite
from core.events import Target, emit
from core.identity import revoke_user_sessions
from core.notifications import notify
from core.tables import Membership, Organization
from plugins.team.queries import owner_count
from plugins.team.rules import ROLE_LABELS, TeamError, can_grant, can_manage_member

LAST_OWNER = ("{org} needs at least one owner. Make someone else an owner first "
              "(or transfer ownership), then try again.")


async def lock_organization(org_id: uuid.UUID) -> None:
    """Serialise team changes of one organization (row lock on PostgreSQL; SQLite is already serial)."""
    if not is_sqlite():
        await Organization.select(Organization.id).where(Organization.id == org_id).lock_rows()


def _org(ctx: RequestContext) -> Any:
    if ctx.organization is None:
        raise TeamError("No organization selected.", status=404)
    return ctx.organization


async def find_member(ctx: RequestContext, membership_id: uuid.UUID) -> dict[str, Any]:
    """A membership of the current organization with its user's email and name (404 otherwise)."""
    org = _org(ctx)
    row = await Membership.select(
        Membership.id, Membership.role, Membership.user.id.as_alias("user_id"),
        Membership.user.email.as_alias("email"), Membership.user.name.as_alias("name"),
    ).where(Membership.id == membership_id, Membership.tenant == ctx.tenant.id,
            Membership.organization == org.id).first()
    if row is None:
        raise TeamError("This person is not a member of the organization (any more).", status=404)
    return row


async def member_by_email(ctx: RequestContext, email: str) -> dict[str, Any] | None:
    """A member of the current organization by email."""
    org = _org(ctx)
    return await Membership.select(
        Membership.id, Membership.role, Membership.user.id.as_alias("user_id"),
        Membership.user.email.as_alias("email"), Membership.user.name.as_alias("name"),
    ).where(Membership.tenant == ctx.tenant.id, Membership.organization == org.id,
            Membership.user.email == email.strip().lower()).first()


def _is_self(ctx: RequestContext, row: dict[str, Any]) -> bool:
    return ctx.user is not None and row["user_id"] == ctx.user.id


def _target(row: dict[str, Any]) -> Target:
    return Target("membership", str(row["id"]), row["email"])


async def change_role(ctx: RequestContext, membership_id: uuid.UUID, role: str) -> dict[str, Any]:
    """Give a member another role; returns the member row as it is now."""
    org = _org(ctx)
    if role not in ROLE_LABELS:
        raise TeamError("Choose one of the roles in the list.", field="role")
    if not can_grant(ctx.role, role):
        raise TeamError(f"You cannot grant the {ROLE_LABELS[role]} role: it is above your own.",
                        status=403, field="role")
    async with atomic():
        await lock_organization(org.id)
        row = await find_member(ctx, membership_id)
        if not _is_self(ctx, row) and not can_manage_member(ctx.role, row["role"]):
            raise TeamError(f"{row['email']} is {ROLE_LABELS.get(row['role'], row['role'])}, above your own "
                            "role: only an owner can change that.", status=403)
        if row["role"] == role:
            return row
        if row["role"] == "owner" and await owner_count(ctx.tenant.id, org.id) <= 1:
            raise TeamError(LAST_OWNER.format(org=org.name), status=409, field="role")
        await Membership.update({Membership.role: role}).where(Membership.id == row["id"])
        await emit(ctx, "team.member.role_changed", target=_target(row),
                   before={"role": row["role"]}, after={"role": role})
        if not _is_self(ctx, row):
            await notify(ctx.tenant.id, row["user_id"], f"Your role in {org.name} is now {ROLE_LABELS[role]}",
                         link=f"/o/{org.slug}/", organization_id=org.id)
    return {**row, "role": role}


async def remove_member(ctx: RequestContext, membership_id: uuid.UUID) -> dict[str, Any]:
    """Take a member out of the organization and end their sessions on the tenant at once."""
    org = _org(ctx)
    async with atomic():
        await lock_organization(org.id)
        row = await find_member(ctx, membership_id)
        if _is_self(ctx, row):
            raise TeamError("To leave the organization yourself, use “Leave organization”.")
        if not can_manage_member(ctx.role, row["role"]):
            raise TeamError(f"{row['email']} is {ROLE_LABELS.get(row['role'], row['role'])}, above your own "
                            "role: only an owner can remove them.", status=403)
        if row["role"] == "owner" and await owner_count(ctx.tenant.id, org.id) <= 1:
            raise TeamError(LAST_OWNER.format(org=org.name), status=409)
        await Membership.delete().where(Membership.id == row["id"])
        ended = await revoke_user_sessions(ctx.tenant.id, row["user_id"])
        await emit(ctx, "team.member.removed", target=_target(row),
                   before={"role": row["role"], "email": row["email"]}, after=None,
                   data={"sessions_ended": ended})
    return row


async def leave_organization(ctx: RequestContext) -> dict[str, Any]:
    """The signed-in user leaves the current organization (never its last owner)."""
    org = _org(ctx)
    if ctx.user is None:
        raise TeamError("Sign in first.", status=401)
    async with atomic():
        await lock_organization(org.id)
        row = await member_by_email(ctx, ctx.user.email)
        if row is None:
            raise TeamError("You are not a member of this organization.", status=404)
        if row["role"] == "owner" and await owner_count(ctx.tenant.id, org.id) <= 1:
            raise TeamError(f"You are the last owner of {org.name}. Transfer ownership to someone else "
                            "before you leave.", status=409)
        await Membership.delete().where(Membership.id == row["id"])
        await emit(ctx, "team.member.left", target=_target(row), before={"role": row["role"]}, after=None)
    return row


async def transfer_ownership(ctx: RequestContext, new_owner_email: str, confirm_name: str) -> dict[str, Any]:
    """Make another member the owner and step down to admin; the owner confirms by typing the organization name."""
    org = _org(ctx)
    if ctx.role != "owner" or ctx.user is None:
        raise TeamError("Only an owner can transfer ownership.", status=403)
    if confirm_name.strip() != org.name:
        raise TeamError(f"Type the organization name exactly as shown: {org.name}", field="confirm")
    async with atomic():
        await lock_organization(org.id)
        me = await member_by_email(ctx, ctx.user.email)
        target = await member_by_email(ctx, new_owner_email) if new_owner_email.strip() else None
        if me is None or me["role"] != "owner":
            raise TeamError("Only an owner can transfer ownership.", status=403)
        if target is None:
            raise TeamError("Choose a member of the organization by their email. Invite them first if they "
                            "are not a member yet.", field="email")
        if target["id"] == me["id"]:
            raise TeamError("You are already an owner: choose someone else.", field="email")
        await Membership.update({Membership.role: "owner"}).where(Membership.id == target["id"])
        await Membership.update({Membership.role: "admin"}).where(Membership.id == me["id"])
        await emit(ctx, "team.ownership.transferred", target=_target(target),
                   before={"owner": me["email"], "new_owner_role": target["role"]},
                   after={"owner": target["email"], "previous_owner_role": "admin"})
        await notify(ctx.tenant.id, target["user_id"], f"You are now an owner of {org.name}",
                     body=f"{ctx.user.display} transferred ownership to you.", link=f"/o/{org.slug}/team",
                     organization_id=org.id)
    ctx.role = "admin"
    return target
