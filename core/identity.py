"""Users, organizations, memberships and server-side sessions.

A session cookie holds a random token; the database keeps only its SHA-256, the
tenant, the user, how they signed in, and idle/absolute expiry. A token is
looked up only together with the tenant of the Host, so tenant A's cookie means
nothing on tenant B's host. Logging in always issues a new token (rotation).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from litestar import Response

from core.context import CurrentOrganization, CurrentUser, RequestContext
from core.db import as_utc, fetch_small, utcnow
from core.security import token_hash
from core.tables import Membership, Organization, User, UserSession

SESSION_COOKIE = "portal_session"
TOUCH_INTERVAL = timedelta(seconds=60)


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


async def find_user(tenant_id: uuid.UUID, email: str) -> dict[str, Any] | None:
    """A tenant's user by email (the same email elsewhere is another account)."""
    return await User.select().where(User.tenant == tenant_id, User.email == normalize_email(email)).first()


# Every signed-in request runs these two lookups: plain SQL through ``fetch_small`` (one indexed row each)
# instead of Piccolo's joined selects, whose query building cost more than the queries (~0.5 ms each).
SESSION_SQL = (
    "SELECT s.id, s.auth_method, s.last_seen_at, s.expires_at, u.id AS user_id, u.email, u.name, "
    'u.is_tenant_admin FROM user_session s JOIN portal_user u ON u.id = s."user" '
    "WHERE s.key_hash = ? AND s.tenant = ? AND s.revoked_at IS NULL LIMIT 1"
)
MEMBERSHIP_SQL = (
    "SELECT m.id, m.role, m.last_active_at, o.id AS org_id, o.name AS org_name, o.require_2fa "
    'FROM membership m JOIN organization o ON o.id = m.organization AND o.tenant = m.tenant '
    'WHERE m.tenant = ? AND m."user" = ? '
    "AND o.slug = ? LIMIT 1"
)


async def load_session(ctx: RequestContext, token: str | None) -> None:
    """Attach the session's user to ``ctx`` if the token is valid on this tenant and not expired."""
    if not token or len(token) > 200:
        return
    rows = await fetch_small(SESSION_SQL, (token_hash(token), ctx.tenant.id))
    row = rows[0] if rows else None
    if row is None:
        return
    now = utcnow()
    last_seen = as_utc(row["last_seen_at"])
    idle = timedelta(seconds=ctx.runtime.settings.session_idle_timeout)
    if as_utc(row["expires_at"]) <= now or last_seen + idle <= now:
        await UserSession.update({UserSession.revoked_at: now}).where(UserSession.id == row["id"])
        return
    if now - last_seen > TOUCH_INTERVAL:
        await UserSession.update({UserSession.last_seen_at: now}).where(UserSession.id == row["id"])
    ctx.user = CurrentUser(row["user_id"], row["email"], row["name"], bool(row["is_tenant_admin"]))
    ctx.session_id = row["id"]
    ctx.auth_method = row["auth_method"]


async def start_session(ctx: RequestContext, user_id: uuid.UUID, auth_method: str) -> str:
    """Create a new session (revoking the one the request came with) and return its cookie token."""
    now = utcnow()
    if ctx.session_id is not None:
        await UserSession.update({UserSession.revoked_at: now}).where(UserSession.id == ctx.session_id)
    token = secrets.token_urlsafe(32)
    session = UserSession(
        id=uuid.uuid4(), key_hash=token_hash(token), tenant=ctx.tenant.id, user=user_id,
        auth_method=auth_method, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(seconds=ctx.runtime.settings.session_absolute_timeout),
        ip=ctx.ip[:64], user_agent=ctx.user_agent[:500],
    )
    await UserSession.insert(session)
    ctx.session_id = session.id
    ctx.auth_method = auth_method
    return token


async def rotate_session(ctx: RequestContext) -> str:
    """Issue a new token for the current user after a privilege change; the old token dies."""
    assert ctx.user is not None
    return await start_session(ctx, ctx.user.id, ctx.auth_method or "password")


async def end_session(ctx: RequestContext) -> None:
    """Revoke the current session (logout)."""
    if ctx.session_id is not None:
        await UserSession.update({UserSession.revoked_at: utcnow()}).where(UserSession.id == ctx.session_id)
        ctx.session_id = None


async def revoke_user_sessions(tenant_id: uuid.UUID, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> int:
    """End every session of a user (password change, removal); returns how many ended."""
    query = UserSession.update({UserSession.revoked_at: utcnow()}).where(
        UserSession.tenant == tenant_id, UserSession.user == user_id, UserSession.revoked_at.is_null()
    )
    if keep is not None:
        query = query.where(UserSession.id != keep)
    rows = await query.returning(UserSession.id)
    return len(rows)


def set_session_cookie(response: Response[Any], ctx: RequestContext, token: str | None) -> None:
    """Host-only cookie (no Domain), HttpOnly, SameSite=Lax, Secure in production; ``None`` clears it."""
    if token is None:
        response.delete_cookie(SESSION_COOKIE, path="/")
        return
    response.set_cookie(
        SESSION_COOKIE, token, path="/", httponly=True, samesite="lax", secure=ctx.secure,
        max_age=ctx.runtime.settings.session_absolute_timeout,
    )


async def user_organizations(ctx: RequestContext) -> list[dict[str, Any]]:
    """The organizations the user belongs to on this tenant (for the switcher), cached per request."""
    if ctx.user is None:
        return []
    if "organizations" not in ctx.cache:
        ctx.cache["organizations"] = await Membership.select(
            Membership.organization.slug.as_alias("slug"), Membership.organization.name.as_alias("name"),
            Membership.role,
        ).where(Membership.user == ctx.user.id, Membership.tenant == ctx.tenant.id).order_by(
            Membership.organization.name
        )
    return ctx.cache["organizations"]


async def resolve_membership(ctx: RequestContext, org_slug: str) -> bool:
    """Set the organization, role and permissions for ``/o/{org}``; False if the user is no member."""
    if ctx.user is None:
        return False
    rows = await fetch_small(MEMBERSHIP_SQL, (ctx.tenant.id, ctx.user.id, org_slug))
    row = rows[0] if rows else None
    if row is None:
        return False
    ctx.organization = CurrentOrganization(row["org_id"], org_slug, row["org_name"])
    ctx.cache["org_requires_2fa"] = bool(row["require_2fa"])
    ctx.role = row["role"]
    ctx.permissions = ctx.runtime.permissions_for_role(ctx.tenant, row["role"])
    now = utcnow()
    last_active = as_utc(row["last_active_at"])
    if last_active is None or now - last_active > TOUCH_INTERVAL:
        await Membership.update({Membership.last_active_at: now}).where(Membership.id == row["id"])
    return True


async def organization_by_slug(tenant_id: uuid.UUID, slug: str) -> dict[str, Any] | None:
    """An organization of the tenant by slug."""
    return await Organization.select().where(Organization.tenant == tenant_id, Organization.slug == slug).first()


def safe_next(target: str | None, default: str = "/") -> str:
    """A post-login redirect target only if it is a local path (``/x``), never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


async def landing_path(ctx: RequestContext) -> str:
    """Where a signed-in user starts: their first organization, else their account."""
    organizations = await user_organizations(ctx)
    return f"/o/{organizations[0]['slug']}/" if organizations else "/account"
