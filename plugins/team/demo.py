"""Demo content for ``make run``: extra members (some on SSO) and pending invitations.

Idempotent: users, memberships and invitations are looked up by email before
anything is added. Demo members get no password (they exist to fill the list);
their past sessions are stored revoked, so the list can show how they signed in.
The invitations' tokens are thrown away: a demo invitation is accepted by
resending it from the team page, which mails a fresh link to the dev outbox.

The demo stays within the plan's seat limit (members and open invitations both hold
a seat) and leaves one seat free, so "Invite" works on every demo organization.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from core.db import atomic, utcnow
from core.security import token_hash
from core.tables import Membership, User, UserSession
from plugins.team.invitations import invitation_days
from plugins.team.queries import seat_status
from plugins.team.tables import Invitation

MEMBERS = [
    ("Priya Natarajan", "priya", "admin", "password", 2),
    ("Jonas Becker", "jonas", "member", "oidc", 0),
    ("Amara Okafor", "amara", "member", "saml", 5),
    ("Lucas Martin", "lucas", "viewer", "password", 12),
    ("Sofia Rossi", "sofia", "billing", "password", 1),
]
INVITES = [("hannah", "member"), ("diego", "viewer"), ("mei", "admin")]


def _domain(org: dict[str, Any]) -> str:
    return f"{org['slug']}.example"


def _within(room: int | None) -> tuple[list[tuple[str, str, str, str, int]], list[tuple[str, str]]]:
    """The demo members and invitations that fit ``room`` free seats, alternating so both show."""
    members, invites = list(MEMBERS), list(INVITES)
    if room is None:
        return members, invites
    chosen_members: list[tuple[str, str, str, str, int]] = []
    chosen_invites: list[tuple[str, str]] = []
    while room > 0 and (members or invites):
        take_invite = invites and (not members or len(chosen_members) > 2 * len(chosen_invites))
        if take_invite:
            chosen_invites.append(invites.pop(0))
        else:
            chosen_members.append(members.pop(0))
        room -= 1
    return chosen_members, chosen_invites


async def seed(ctx: Any, org: dict[str, Any]) -> None:
    """Add the demo members and invitations that are not there yet and fit the plan."""
    now = utcnow()
    tenant_id = ctx.tenant.id
    seats = await seat_status(ctx, org)
    members, invites = _within(None if seats.free is None else seats.free - 1)
    inviter = await Membership.select(Membership.user).where(
        Membership.organization == org["id"], Membership.role == "owner").first()
    async with atomic():
        for name, local, role, method, days_ago in members:
            email = f"{local}@{_domain(org)}"
            user = await User.select(User.id).where(User.tenant == tenant_id, User.email == email).first()
            user_id = user["id"] if user else uuid.uuid4()
            if user is None:
                await User.insert(User(id=user_id, tenant=tenant_id, email=email, name=name,
                                       created_at=now - timedelta(days=40)))
                seen = now - timedelta(days=days_ago, hours=3)
                await UserSession.insert(UserSession(
                    id=uuid.uuid4(), key_hash=token_hash(secrets.token_urlsafe(32)), tenant=tenant_id, user=user_id,
                    auth_method=method, created_at=seen, last_seen_at=seen, expires_at=seen + timedelta(days=14),
                    revoked_at=seen + timedelta(hours=1), user_agent="Demo browser"))
            if not await Membership.exists().where(Membership.organization == org["id"], Membership.user == user_id):
                await Membership.insert(Membership(
                    id=uuid.uuid4(), tenant=tenant_id, organization=org["id"], user=user_id, role=role,
                    created_at=now - timedelta(days=30 - days_ago),
                    last_active_at=now - timedelta(days=days_ago, hours=3)))
        for local, role in invites:
            email = f"{local}@{_domain(org)}"
            if await Invitation.exists().where(Invitation.organization == org["id"], Invitation.email == email):
                continue
            await Invitation.insert(Invitation(
                id=uuid.uuid4(), tenant=tenant_id, organization=org["id"], email=email, role=role,
                token_hash=token_hash(secrets.token_urlsafe(32)), invited_by=inviter["user"] if inviter else None,
                created_at=now - timedelta(days=1), last_sent_at=now - timedelta(days=1),
                expires_at=now + timedelta(days=invitation_days(ctx.tenant) - 1), send_count=1))
