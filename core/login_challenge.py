"""The half-way state of a two-factor sign-in: password checked, code still to come.

It is deliberately *not* a session: a separate cookie (``portal_2fa``, path ``/login``)
holds a random token whose SHA-256 is stored with the tenant, the user and the
``next`` target. It expires after five minutes, allows five code attempts, and is
consumed exactly once (a conditional ``UPDATE``). Only then does the login handler
create a real session, so nothing behind ``login_required`` ever sees this state.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from litestar import Response

from core.context import RequestContext
from core.db import as_utc, utcnow
from core.security import token_hash
from core.tables import PendingLogin

CHALLENGE_COOKIE = "portal_2fa"
CHALLENGE_PATH = "/login"
CHALLENGE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5


async def start_challenge(ctx: RequestContext, user_id: uuid.UUID, next_path: str) -> str:
    """Record a correct password awaiting its second factor; returns the cookie token."""
    now = utcnow()
    await PendingLogin.delete().where(PendingLogin.expires_at < now - timedelta(days=1))
    token = secrets.token_urlsafe(32)
    await PendingLogin.insert(PendingLogin(
        id=uuid.uuid4(), key_hash=token_hash(token), tenant=ctx.tenant.id, user=user_id,
        next_path=next_path[:2000], attempts=0, created_at=now, expires_at=now + CHALLENGE_TTL, consumed_at=None,
    ))
    return token


async def load_challenge(ctx: RequestContext, token: str | None) -> dict[str, Any] | None:
    """The live challenge of this tenant for ``token`` (not expired, consumed or exhausted)."""
    if not token or len(token) > 200:
        return None
    row = await PendingLogin.select(
        PendingLogin.id, PendingLogin.user, PendingLogin.next_path, PendingLogin.attempts, PendingLogin.expires_at,
        PendingLogin.user.email.as_alias("email"), PendingLogin.user.name.as_alias("name"),
        PendingLogin.user.is_tenant_admin.as_alias("is_tenant_admin"),
    ).where(
        PendingLogin.key_hash == token_hash(token), PendingLogin.tenant == ctx.tenant.id,
        PendingLogin.consumed_at.is_null(),
    ).first()
    if row is None or as_utc(row["expires_at"]) <= utcnow() or row["attempts"] >= MAX_ATTEMPTS:
        return None
    return row


async def count_failure(challenge_id: uuid.UUID) -> int:
    """Record a wrong code; returns the attempts left (0: the challenge is dead, sign in again)."""
    rows = await PendingLogin.update({PendingLogin.attempts: PendingLogin.attempts + 1}).where(
        PendingLogin.id == challenge_id
    ).returning(PendingLogin.attempts)
    return max(0, MAX_ATTEMPTS - (rows[0]["attempts"] if rows else MAX_ATTEMPTS))


async def consume(challenge_id: uuid.UUID) -> bool:
    """Use the challenge up; False if another request already did."""
    rows = await PendingLogin.update({PendingLogin.consumed_at: utcnow()}).where(
        PendingLogin.id == challenge_id, PendingLogin.consumed_at.is_null()
    ).returning(PendingLogin.id)
    return bool(rows)


def set_challenge_cookie(response: Response[Any], ctx: RequestContext, token: str | None) -> None:
    """HttpOnly, SameSite=Lax, scoped to ``/login``; ``None`` clears it."""
    if token is None:
        response.delete_cookie(CHALLENGE_COOKIE, path=CHALLENGE_PATH)
        return
    response.set_cookie(CHALLENGE_COOKIE, token, path=CHALLENGE_PATH, httponly=True, samesite="lax",
                        secure=ctx.secure, max_age=int(CHALLENGE_TTL.total_seconds()))
