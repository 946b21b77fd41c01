"""Password reset by email: ``/password/forgot`` and ``/password/reset/{token}``.

- The answer to "send me a link" is the same page whether or not the email has an
  account here (no account probing); requests are throttled per address and, silently,
  per account.
- The link holds a random token; only its SHA-256 is stored. It works once, for one
  hour, and a newer link or a completed reset kills the older ones.
- Links use the tenant's stored primary domain (``send_mail`` / ``base_url``), never the Host.
- A completed reset ends every session of the user. Two-factor authentication still
  applies at the next sign-in: a mailbox alone never gets past 2FA.
- The reset page sends ``Referrer-Policy: no-referrer`` so the token never leaks in a Referer.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from core.context import Ctx
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.identity import find_user, normalize_email, revoke_user_sessions
from core.mail import send_mail
from core.rendering import render
from core.security import password_problem, token_hash
from core.tables import PasswordReset, User

RESET_TTL = timedelta(hours=1)
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


@get("/password/forgot", name="password_forgot")
async def forgot_page(ctx: Ctx) -> Response[Any]:
    """Ask for a reset link."""
    if ctx.user is not None:
        return Redirect("/account")
    return await render(ctx, "auth/forgot.html", errors={}, email="", sent=False)


@post("/password/forgot", name="password_forgot_submit")
async def forgot_submit(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Send a reset link if the account exists; the page says the same either way."""
    form = await request.form()
    email = normalize_email(str(form.get("email", "")))[:320]
    if not EMAIL_SHAPE.match(email):
        return await render(ctx, "auth/forgot.html", status_code=400, email=email, sent=False,
                            errors={"email": "Enter the email address you sign in with."})
    by_address = ctx.runtime.limiter("reset_by_address", 10, 15 * 60)
    wait = await by_address.retry_after(f"ip:{ctx.ip}")
    if wait:
        return await render(ctx, "auth/forgot.html", status_code=429, headers={"Retry-After": str(wait)},
                            email=email, sent=False,
                            errors={"email": "Too many requests from your network. Try again in a few minutes."})
    await by_address.hit(f"ip:{ctx.ip}")
    by_account = ctx.runtime.limiter("reset_by_account", 3, 60 * 60)
    user = await find_user(ctx.tenant.id, email)
    refusal = await ctx.runtime.plugins.first("portal_password_login_policy", tenant=ctx.tenant, ctx=ctx,
                                              email=email)
    account_key = f"{ctx.tenant.id}:{email}"
    if user is not None and not refusal and not await by_account.retry_after(account_key):
        await by_account.hit(account_key)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with atomic():
            await PasswordReset.delete().where(PasswordReset.expires_at < now - timedelta(days=7))
            await PasswordReset.update({PasswordReset.used_at: now}).where(
                PasswordReset.tenant == ctx.tenant.id, PasswordReset.user == user["id"],
                PasswordReset.used_at.is_null())
            await PasswordReset.insert(PasswordReset(
                id=uuid.uuid4(), key_hash=token_hash(token), tenant=ctx.tenant.id, user=user["id"],
                created_at=now, expires_at=now + RESET_TTL, used_at=None, ip=ctx.ip[:64],
            ))
            await send_mail(ctx, user["email"], "password_reset", f"Reset your {ctx.tenant.product_name} password",
                            name=user["name"], reset_path=f"/password/reset/{token}", valid_minutes=60)
            await emit(ctx, "auth.password_reset.requested", target=Target("user", str(user["id"]), user["email"]))
    return await render(ctx, "auth/forgot.html", email=email, sent=True, errors={})


async def _live_reset(ctx: Ctx, token: str) -> dict[str, Any] | None:
    if len(token) > 200:
        return None
    row = await PasswordReset.select(
        PasswordReset.id, PasswordReset.user, PasswordReset.expires_at,
        PasswordReset.user.email.as_alias("email"),
    ).where(
        PasswordReset.key_hash == token_hash(token), PasswordReset.tenant == ctx.tenant.id,
        PasswordReset.used_at.is_null(),
    ).first()
    if row is None or as_utc(row["expires_at"]) <= utcnow():
        return None
    return row


async def _reset_page(ctx: Ctx, *, status_code: int = 200, valid: bool = True, errors: dict[str, str] | None = None,
                      email: str = "") -> Response[Any]:
    return await render(ctx, "auth/reset.html", status_code=status_code, headers=NO_REFERRER, valid=valid,
                        errors=errors or {}, email=email)


@get("/password/reset/{token:str}", name="password_reset")
async def reset_page(ctx: Ctx, token: FromPath[str]) -> Response[Any]:
    """Choose a new password (a used, expired or foreign link says so and offers a new one)."""
    reset = await _live_reset(ctx, token)
    if reset is None:
        return await _reset_page(ctx, status_code=400, valid=False)
    return await _reset_page(ctx, email=reset["email"])


@post("/password/reset/{token:str}", name="password_reset_submit")
async def reset_submit(ctx: Ctx, token: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
    """Set the new password, spend the link, end every session of the user."""
    reset = await _live_reset(ctx, token)
    if reset is None:
        return await _reset_page(ctx, status_code=400, valid=False)
    form = await request.form()
    new = str(form.get("new_password", ""))
    errors: dict[str, str] = {}
    if problem := password_problem(new, reset["email"]):
        errors["new_password"] = problem
    elif new != str(form.get("confirm_password", "")):
        errors["confirm_password"] = "The two passwords do not match."
    if errors:
        return await _reset_page(ctx, status_code=400, errors=errors, email=reset["email"])
    async with atomic():
        spent = await PasswordReset.update({PasswordReset.used_at: utcnow()}).where(
            PasswordReset.id == reset["id"], PasswordReset.used_at.is_null()).returning(PasswordReset.id)
        if not spent:
            return await _reset_page(ctx, status_code=400, valid=False)
        await User.update({User.password_hash: ctx.runtime.passwords.hash(new)}).where(
            User.id == reset["user"], User.tenant == ctx.tenant.id)
        await PasswordReset.update({PasswordReset.used_at: utcnow()}).where(
            PasswordReset.user == reset["user"], PasswordReset.used_at.is_null())
        ended = await revoke_user_sessions(ctx.tenant.id, reset["user"])
        await emit(ctx, "auth.password_reset.completed", target=Target("user", str(reset["user"]), reset["email"]),
                   data={"sessions_ended": ended})
    await ctx.runtime.login_by_account.reset(f"{ctx.tenant.id}:{reset['email']}")
    return Redirect("/login?notice=password-reset", headers=NO_REFERRER)


PASSWORD_RESET_HANDLERS = [forgot_page, forgot_submit, reset_page, reset_submit]
