"""The invitation lifecycle: create, resend, revoke, look up by token, accept.

A token is 32 random bytes (``secrets.token_urlsafe``); only its SHA-256
(``core.security.token_hash``) is stored, so a database leak reveals no usable
link. Resending issues a new token and the old link dies with it. An invitation
is single-use: acceptance is a conditional UPDATE that only one request can win.
It expires after ``tenant.settings["team"]["invitation_days"]`` days (default 7).
Open, unexpired invitations hold a seat, like members.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.context import CurrentUser, RequestContext
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.identity import start_session
from core.mail import send_mail
from core.notifications import notify
from core.security import token_hash
from core.tables import Membership, Organization, User
from plugins.team.queries import Seats, member_count, pending_count, plan_seat_limit
from plugins.team.rules import MAX_INVITES_PER_REQUEST, ROLE_LABELS, TeamError, can_grant, parse_emails
from plugins.team.service import lock_organization
from plugins.team.tables import Invitation

DEFAULT_DAYS = 7
MAIL_TEMPLATE = "team_invitation"


def invitation_days(tenant: Any) -> int:
    """How long an invitation link works on this tenant (``settings.team.invitation_days``, 1–90)."""
    try:
        days = int((tenant.settings.get("team") or {}).get("invitation_days", DEFAULT_DAYS))
    except (TypeError, ValueError, AttributeError):
        return DEFAULT_DAYS
    return min(max(days, 1), 90)


def status_of(row: dict[str, Any], now: datetime | None = None) -> str:
    """``pending``, ``expired``, ``accepted`` or ``revoked``."""
    if row.get("accepted_at") is not None:
        return "accepted"
    if row.get("revoked_at") is not None:
        return "revoked"
    return "expired" if as_utc(row["expires_at"]) <= (now or utcnow()) else "pending"


def seats_message(ctx: RequestContext, seats: Seats, wanted: int) -> str:
    """The seat-limit refusal: what is in use and how to get more seats."""
    assert seats.limit is not None and ctx.organization is not None
    free = seats.free or 0
    text = (f"Your plan includes {seats.limit} seat{'s' * (seats.limit != 1)} and {seats.used} "
            f"{'are' if seats.used != 1 else 'is'} in use ({seats.members} member{'s' * (seats.members != 1)}, "
            f"{seats.pending} pending invitation{'s' * (seats.pending != 1)}), so you can invite "
            f"{free} more, not {wanted}. ")
    if "billing" in ctx.enabled_plugins:
        text += f"Upgrade your plan under Billing (/o/{ctx.organization.slug}/billing) to get more seats, "
    else:
        support = ctx.tenant.branding.get("support_email")
        text += f"Contact {support} to get more seats, " if support else "Ask your provider for more seats, "
    return text + "or revoke pending invitations and remove members you no longer need."


async def _check_seats(ctx: RequestContext, wanted: int) -> None:
    org = ctx.organization
    assert org is not None
    limit = await plan_seat_limit(ctx, org)
    if limit is None:
        return
    seats = Seats(await member_count(ctx.tenant.id, org.id), await pending_count(ctx.tenant.id, org.id), limit)
    if seats.used + wanted > limit:
        raise TeamError(seats_message(ctx, seats, wanted), status=409, field="emails")


async def _send(ctx: RequestContext, row: dict[str, Any], token: str) -> None:
    org = ctx.organization
    assert org is not None
    inviter = ctx.user.display if ctx.user else ctx.tenant.product_name
    await send_mail(
        ctx, row["email"], MAIL_TEMPLATE,
        f"{inviter} invited you to join {org.name} on {ctx.tenant.product_name}",
        dedupe_key=f"team.invitation:{row['id']}:{row['send_count']}",
        inviter=inviter, organization_name=org.name, role_label=ROLE_LABELS[row["role"]], token=token,
        expires_at=row["expires_at"], days=invitation_days(ctx.tenant),
    )


def _target(row: dict[str, Any]) -> Target:
    return Target("invitation", str(row["id"]), row["email"])


async def create_invitations(ctx: RequestContext, raw_emails: str, role: str) -> list[dict[str, Any]]:
    """Invite one or several addresses with a role; all or nothing (any problem and none is sent)."""
    org = ctx.organization
    assert org is not None
    emails, invalid = parse_emails(raw_emails)
    if invalid:
        raise TeamError("These are not valid email addresses: " + ", ".join(invalid[:10]), field="emails")
    if not emails:
        raise TeamError("Enter at least one email address.", field="emails")
    if len(emails) > MAX_INVITES_PER_REQUEST:
        raise TeamError(f"Invite at most {MAX_INVITES_PER_REQUEST} people at once.", field="emails")
    if role not in ROLE_LABELS:
        raise TeamError("Choose one of the roles in the list.", field="role")
    if not can_grant(ctx.role, role):
        raise TeamError(f"You cannot grant the {ROLE_LABELS[role]} role: it is above your own.", status=403,
                        field="role")
    now = utcnow()
    created: list[dict[str, Any]] = []
    async with atomic():
        await lock_organization(org.id)
        members = await Membership.select(Membership.user.email.as_alias("email")).where(
            Membership.tenant == ctx.tenant.id, Membership.organization == org.id,
            Membership.user.email.is_in(emails))
        if members:
            raise TeamError("Already members: " + ", ".join(sorted(m["email"] for m in members)), status=409,
                            field="emails")
        open_rows = await Invitation.select().where(
            Invitation.tenant == ctx.tenant.id, Invitation.organization == org.id, Invitation.email.is_in(emails),
            Invitation.accepted_at.is_null(), Invitation.revoked_at.is_null())
        pending = [r["email"] for r in open_rows if status_of(r, now) == "pending"]
        if pending:
            raise TeamError("Already invited (resend the invitation instead): " + ", ".join(sorted(pending)),
                            status=409, field="emails")
        await _check_seats(ctx, len(emails))
        for stale in open_rows:  # expired and never used: replaced by the new invitation
            await Invitation.update({Invitation.revoked_at: now}).where(Invitation.id == stale["id"])
            await emit(ctx, "team.invitation.revoked", target=_target(stale), before={"status": "expired"},
                       after={"status": "revoked"}, data={"reason": "replaced"})
        expires = now + timedelta(days=invitation_days(ctx.tenant))
        for email in emails:
            token = secrets.token_urlsafe(32)
            row = {"id": uuid.uuid4(), "email": email, "role": role, "send_count": 1, "expires_at": expires}
            await Invitation.insert(Invitation(
                id=row["id"], tenant=ctx.tenant.id, organization=org.id, email=email, role=role,
                token_hash=token_hash(token), invited_by=ctx.user.id if ctx.user else None, created_at=now,
                expires_at=expires, last_sent_at=now, send_count=1,
            ))
            await _send(ctx, row, token)
            await emit(ctx, "team.invitation.created", target=_target(row), before=None,
                       after={"email": email, "role": role, "expires_at": expires.isoformat()})
            created.append(row)
    return created


async def _open_invitation(ctx: RequestContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    org = ctx.organization
    assert org is not None
    row = await Invitation.select().where(Invitation.id == invitation_id, Invitation.tenant == ctx.tenant.id,
                                          Invitation.organization == org.id).first()
    if row is None:
        raise TeamError("This invitation does not exist.", status=404)
    state = status_of(row)
    if state in ("accepted", "revoked"):
        raise TeamError(f"This invitation was already {state}.", status=409)
    return row


async def resend_invitation(ctx: RequestContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    """Send a new link (the old one stops working) and restart the expiry clock."""
    org = ctx.organization
    assert org is not None
    now = utcnow()
    async with atomic():
        await lock_organization(org.id)
        row = await _open_invitation(ctx, invitation_id)
        if not can_grant(ctx.role, row["role"]):
            raise TeamError("This invitation grants a role above your own.", status=403)
        if status_of(row, now) == "expired":
            await _check_seats(ctx, 1)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(days=invitation_days(ctx.tenant))
        old_expiry = as_utc(row["expires_at"])
        row.update(send_count=row["send_count"] + 1, expires_at=expires)
        await Invitation.update({
            Invitation.token_hash: token_hash(token), Invitation.expires_at: expires,
            Invitation.last_sent_at: now, Invitation.send_count: row["send_count"],
        }).where(Invitation.id == row["id"])
        await _send(ctx, row, token)
        await emit(ctx, "team.invitation.resent", target=_target(row),
                   before={"expires_at": old_expiry.isoformat() if old_expiry else None,
                           "send_count": row["send_count"] - 1},
                   after={"expires_at": expires.isoformat(), "send_count": row["send_count"]})
    return row


async def revoke_invitation(ctx: RequestContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    """Kill an open invitation: its link answers "revoked" from now on and its seat is free."""
    org = ctx.organization
    assert org is not None
    async with atomic():
        await lock_organization(org.id)
        row = await _open_invitation(ctx, invitation_id)
        if not can_grant(ctx.role, row["role"]):
            raise TeamError("This invitation grants a role above your own.", status=403)
        before = status_of(row)
        await Invitation.update({Invitation.revoked_at: utcnow()}).where(Invitation.id == row["id"])
        await emit(ctx, "team.invitation.revoked", target=_target(row), before={"status": before},
                   after={"status": "revoked"})
    return row


@dataclass
class Lookup:
    """What an invitation link points at, on this tenant."""

    state: str
    invitation: dict[str, Any] | None = None
    organization: dict[str, Any] | None = None
    inviter: str = ""


async def lookup(ctx: RequestContext, token: str) -> Lookup:
    """The invitation behind a link on this tenant; ``invalid`` for unknown tokens and other tenants' tokens."""
    if not token or len(token) > 200:
        return Lookup("invalid")
    row = await Invitation.select(
        *Invitation.all_columns(), Invitation.invited_by.name.as_alias("inviter_name"),
        Invitation.invited_by.email.as_alias("inviter_email"),
    ).where(Invitation.token_hash == token_hash(token), Invitation.tenant == ctx.tenant.id).first()
    if row is None:
        return Lookup("invalid")
    org = await Organization.select().where(Organization.id == row["organization"],
                                            Organization.tenant == ctx.tenant.id).first()
    if org is None:
        return Lookup("invalid")
    return Lookup(status_of(row), row, org, row["inviter_name"] or row["inviter_email"] or "")


async def _claim(invitation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    now = utcnow()
    claimed = await Invitation.update({Invitation.accepted_at: now, Invitation.accepted_by: user_id}).where(
        Invitation.id == invitation_id, Invitation.accepted_at.is_null(), Invitation.revoked_at.is_null(),
        Invitation.expires_at > now,
    ).returning(Invitation.id)
    return bool(claimed)


async def _join(ctx: RequestContext, found: Lookup, user_id: uuid.UUID, email: str) -> None:
    inv, org = found.invitation, found.organization
    assert inv is not None and org is not None
    await lock_organization(org["id"])
    if not await _claim(inv["id"], user_id):
        raise TeamError("This invitation is no longer valid.", status=410)
    existing = await Membership.select(Membership.role).where(
        Membership.organization == org["id"], Membership.user == user_id).first()
    if existing is None:
        await Membership.insert(Membership(id=uuid.uuid4(), tenant=ctx.tenant.id, organization=org["id"],
                                           user=user_id, role=inv["role"], created_at=utcnow()))
    role = existing["role"] if existing else inv["role"]
    await emit(ctx, "team.invitation.accepted", target=Target("invitation", str(inv["id"]), email),
               organization_id=org["id"], before={"status": "pending"},
               after={"status": "accepted", "user_id": str(user_id), "role": role})
    if inv["invited_by"] is not None and inv["invited_by"] != user_id:
        await notify(ctx.tenant.id, inv["invited_by"], f"{email} joined {org['name']}",
                     link=f"/o/{org['slug']}/team", organization_id=org["id"])


async def accept_as_user(ctx: RequestContext, found: Lookup) -> None:
    """The signed-in user whose email was invited joins the organization."""
    assert ctx.user is not None and found.invitation is not None
    if ctx.user.email != found.invitation["email"]:
        raise TeamError("This invitation was sent to another email address.", status=403)
    async with atomic():
        await _join(ctx, found, ctx.user.id, ctx.user.email)


async def accept_as_new_user(ctx: RequestContext, found: Lookup, name: str, password: str) -> str:
    """Create the invited person's account, join, and start their session; returns the session token."""
    inv = found.invitation
    assert inv is not None
    email = inv["email"]
    async with atomic():
        if await User.exists().where(User.tenant == ctx.tenant.id, User.email == email):
            raise TeamError("An account with this email already exists: sign in to accept.", status=409)
        user_id = uuid.uuid4()
        await User.insert(User(id=user_id, tenant=ctx.tenant.id, email=email, name=name,
                               password_hash=ctx.runtime.passwords.hash(password), created_at=utcnow(),
                               last_login_at=utcnow()))
        ctx.user = CurrentUser(user_id, email, name)
        try:
            token = await start_session(ctx, user_id, "password")
            await _join(ctx, found, user_id, email)
        except Exception:
            ctx.user, ctx.session_id, ctx.auth_method = None, None, None
            raise
    return token
