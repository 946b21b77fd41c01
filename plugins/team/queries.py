"""Reads of the team: a page of members, open invitations, seats.

The members list uses keyset pagination on the member's email (unique per
tenant, indexed by ``portal_user (tenant, email)``): page 400 of 10,000 members
costs what page 1 costs, because no query skips rows with OFFSET. The cursor is
the email of the row at the page's edge, base64url-encoded so addresses do not
appear as such in URLs and logs. "How they sign in" is the ``auth_method`` of the
member's most recent session on the tenant, read for the rows on the page only.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.db import as_utc, is_sqlite, utcnow
from core.tables import Membership, UserSession
from plugins.team.tables import Invitation

PAGE_SIZE = 25


@dataclass(frozen=True)
class MemberRow:
    """One line of the members list."""

    membership_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined: datetime | None
    last_active: datetime | None
    sign_in: str | None = None

    @property
    def sign_in_label(self) -> str:
        """Password, SSO (with the protocol), or nothing yet."""
        if self.sign_in is None:
            return ""
        if self.sign_in == "password":
            return "Password"
        return "SSO" if self.sign_in == "sso" else f"SSO ({self.sign_in.upper()})"


@dataclass
class MemberPage:
    """A page of members plus what the pager needs."""

    rows: list[MemberRow]
    total: int
    query: str = ""
    next_cursor: str | None = None
    prev_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Seats:
    """Seats in use (members + open, unexpired invitations) against the plan's limit (None: unlimited)."""

    members: int
    pending: int
    limit: int | None

    @property
    def used(self) -> int:
        """What the limit is checked against."""
        return self.members + self.pending

    @property
    def free(self) -> int | None:
        """Seats left, None when unlimited."""
        return None if self.limit is None else max(0, self.limit - self.used)


def encode_cursor(email: str) -> str:
    """An opaque cursor for a page edge."""
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The email a cursor stands for; ``None`` for a missing or forged cursor (first page)."""
    if not cursor or len(cursor) > 500:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode() or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


# Users of the tenant in email order (index portal_user (tenant, email)), each probed in the organization's
# memberships (unique index membership (organization, "user")). CROSS JOIN fixes that join order on SQLite,
# where a LEFT JOIN would sort every member of the organization for each page; PostgreSQL plans it freely.
_FROM = ('FROM portal_user u CROSS JOIN membership m WHERE m."user" = u.id AND u.tenant = {} '
         "AND m.tenant = {} AND m.organization = {}")


def _search_sql(query: str) -> tuple[str, list[Any]]:
    text = query.replace("%", "").replace("\\", "").strip().lower()
    if not text:
        return "", []
    like = "LIKE" if is_sqlite() else "ILIKE"
    return f" AND (u.email {like} {{}} OR u.name {like} {{}})", [f"%{text}%", f"%{text}%"]


async def member_page(tenant_id: uuid.UUID, org_id: uuid.UUID, *, query: str = "", after: str | None = None,
                      before: str | None = None, size: int = PAGE_SIZE) -> MemberPage:
    """One page of an organization's members ordered by email, optionally filtered by name or email."""
    query = query.strip()[:100]
    search, search_args = _search_sql(query)
    base_args: list[Any] = [tenant_id, tenant_id, org_id, *search_args]
    after_email, before_email = decode_cursor(after), decode_cursor(before)
    edge, edge_args = "", []
    if before_email is not None:
        edge, edge_args = " AND u.email < {}", [before_email]
    elif after_email is not None:
        edge, edge_args = " AND u.email > {}", [after_email]
    direction = "DESC" if before_email is not None else "ASC"
    rows = await Membership.raw(
        "SELECT m.id AS id, m.role AS role, m.created_at AS created_at, m.last_active_at AS last_active_at, "
        f"u.id AS user_id, u.email AS email, u.name AS name {_FROM}{search}{edge} "
        f"ORDER BY u.email {direction} LIMIT {int(size) + 1}",
        *base_args, *edge_args,
    )
    more = len(rows) > size
    rows = rows[:size]
    if before_email is not None:
        rows.reverse()
    user_ids = [_uuid(row["user_id"]) for row in rows]
    methods = await sign_in_methods(tenant_id, user_ids)
    members = [MemberRow(
        membership_id=_uuid(row["id"]), user_id=user_id, email=row["email"], name=row["name"] or "",
        role=row["role"], joined=_time(row["created_at"]), last_active=_time(row["last_active_at"]),
        sign_in=methods.get(user_id),
    ) for row, user_id in zip(rows, user_ids, strict=True)]
    if search:
        counted = await Membership.raw(f"SELECT count(*) AS n {_FROM}{search}", *base_args)
        total = int(counted[0]["n"])
    else:
        total = await member_count(tenant_id, org_id)
    page = MemberPage(members, total, query)
    if members:
        first, last = encode_cursor(members[0].email), encode_cursor(members[-1].email)
        if before_email is not None:
            page.prev_cursor = first if more else None
            page.next_cursor = last
        else:
            page.next_cursor = last if more else None
            page.prev_cursor = first if after_email is not None else None
    return page


async def sign_in_methods(tenant_id: uuid.UUID, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """How each user last signed in on the tenant (their newest session's method)."""
    if not user_ids:
        return {}
    rows = await UserSession.select(UserSession.user, UserSession.auth_method).where(
        UserSession.tenant == tenant_id, UserSession.user.is_in(user_ids)
    ).order_by(UserSession.created_at, ascending=False)
    methods: dict[uuid.UUID, str] = {}
    for row in rows:
        methods.setdefault(row["user"], row["auth_method"])
    return methods


async def member_count(tenant_id: uuid.UUID, org_id: uuid.UUID) -> int:
    """How many people belong to the organization (the organization row is the tenant's: checked on lookup)."""
    del tenant_id  # the organization id is already tenant-scoped; counting by it alone uses its covering index
    return await Membership.count().where(Membership.organization == org_id)


async def owner_count(tenant_id: uuid.UUID, org_id: uuid.UUID) -> int:
    """How many owners the organization has (the last one is protected)."""
    return await Membership.count().where(
        Membership.tenant == tenant_id, Membership.organization == org_id, Membership.role == "owner"
    )


def _open(tenant_id: uuid.UUID, org_id: uuid.UUID) -> list[Any]:
    return [Invitation.tenant == tenant_id, Invitation.organization == org_id,
            Invitation.accepted_at.is_null(), Invitation.revoked_at.is_null()]


async def pending_count(tenant_id: uuid.UUID, org_id: uuid.UUID) -> int:
    """Open invitations that have not expired: each holds a seat."""
    return await Invitation.count().where(*_open(tenant_id, org_id), Invitation.expires_at > utcnow())


async def open_invitations(tenant_id: uuid.UUID, org_id: uuid.UUID, limit: int = 200) -> list[dict[str, Any]]:
    """Open invitations (pending or expired, newest first) with who sent them, for the team page."""
    rows = await Invitation.select(
        Invitation.id, Invitation.email, Invitation.role, Invitation.created_at, Invitation.expires_at,
        Invitation.last_sent_at, Invitation.send_count, Invitation.invited_by.email.as_alias("invited_by_email"),
        Invitation.invited_by.name.as_alias("invited_by_name"),
    ).where(*_open(tenant_id, org_id)).order_by(Invitation.created_at, ascending=False).limit(limit)
    now = utcnow()
    for row in rows:
        for key in ("created_at", "expires_at", "last_sent_at"):
            row[key] = as_utc(row[key])
        row["expired"] = row["expires_at"] <= now
    return rows


async def plan_seat_limit(ctx: Any, org: Any) -> int | None:
    """The plan's seat limit from ``portal_plan_limits``; None, a missing key or -1 mean unlimited."""
    limits = await ctx.runtime.plugins.first("portal_plan_limits", tenant=ctx.tenant, ctx=ctx, org=org)
    if not isinstance(limits, dict):
        return None
    seats = limits.get("seats")
    if seats is None:
        return None
    try:
        seats = int(seats)
    except (TypeError, ValueError):
        return None
    return None if seats < 0 else seats


async def seat_status(ctx: Any, org: Any) -> Seats:
    """Members, pending invitations and the plan's limit of one organization."""
    org_id = org["id"] if isinstance(org, dict) else org.id
    return Seats(
        members=await member_count(ctx.tenant.id, org_id),
        pending=await pending_count(ctx.tenant.id, org_id),
        limit=await plan_seat_limit(ctx, org),
    )


async def member_row(tenant_id: uuid.UUID, org_id: uuid.UUID, membership_id: uuid.UUID) -> MemberRow | None:
    """One member as the list shows them (for in-place updates of a row)."""
    row = await Membership.select(
        Membership.id, Membership.role, Membership.created_at, Membership.last_active_at,
        Membership.user.id.as_alias("user_id"), Membership.user.email.as_alias("email"),
        Membership.user.name.as_alias("name"),
    ).where(Membership.id == membership_id, Membership.tenant == tenant_id,
            Membership.organization == org_id).first()
    if row is None:
        return None
    methods = await sign_in_methods(tenant_id, [row["user_id"]])
    return MemberRow(row["id"], row["user_id"], row["email"], row["name"] or "", row["role"],
                     as_utc(row["created_at"]), as_utc(row["last_active_at"]), methods.get(row["user_id"]))
