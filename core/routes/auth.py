"""Sign in and out with email and password.

Failures say only "email or password is incorrect" (no account probing) and
count against both the account and the address; past the limit the form answers
429 with ``Retry-After``. A successful login always starts a new session.

With two-factor authentication on, a correct password only opens a short-lived
challenge (``core.login_challenge``: its own cookie, not a session); the session
is created after a valid authenticator or recovery code at ``/login/2fa``. Wrong
codes are capped per challenge and throttled per account.

Password reset by email (``/password/forgot``): the answer is the same whether
or not the email has an account; the link carries a single-use token valid for
one hour, on the tenant's stored domain; using it ends every session of the user.
Two-factor authentication still applies at the next sign-in.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from core.context import Ctx
from core.db import atomic, utcnow
from core.events import Target, emit
from core.identity import (
    CurrentUser,
    end_session,
    find_user,
    landing_path,
    normalize_email,
    safe_next,
    set_session_cookie,
    start_session,
)
from core.login_challenge import (
    CHALLENGE_COOKIE,
    consume,
    count_failure,
    load_challenge,
    set_challenge_cookie,
    start_challenge,
)
from core.rendering import render
from core.routes.password_reset import PASSWORD_RESET_HANDLERS
from core.tables import User, UserSession
from core.totp import code_throttle, is_enabled, throttle_key, verify_second_factor

GENERIC_FAILURE = "Email or password is incorrect."
LOGIN_NOTICES = {
    "expired": ("warning", "Your sign-in took too long. Enter your email and password again."),
    "too-many-codes": ("warning", "Too many wrong codes. Enter your email and password again."),
    "password-reset": ("success", "Your password was changed. Sign in with your new password."),
}


@get("/", name="home")
async def home(ctx: Ctx) -> Redirect:
    """The bare host: your organization when signed in, the sign-in form otherwise."""
    return Redirect(await landing_path(ctx) if ctx.user else "/login")


@get("/login", name="login")
async def login_page(ctx: Ctx,
                     next_path: Annotated[str | None, QueryParameter(name="next")] = None,
                     notice: Annotated[str | None, QueryParameter(name="notice")] = None) -> Response[Any]:
    """The sign-in form (already signed in: straight to the destination)."""
    if ctx.user is not None:
        return Redirect(safe_next(next_path, await landing_path(ctx)))
    return await login_form(ctx, next_path=safe_next(next_path, ""), notice=LOGIN_NOTICES.get(notice or ""))


async def login_form(ctx: Ctx, *, status_code: int = 200, headers: dict[str, str] | None = None,
                     next_path: str = "", email: str = "", error: str | None = None,
                     notice: tuple[str, str] | None = None) -> Response[Any]:
    """The login page with every plugin's extra sign-in options."""
    options = [option for _slug, contributed in
               await ctx.runtime.plugins.call("portal_login_options", tenant=ctx.tenant, ctx=ctx)
               for option in contributed]
    return await render(ctx, "auth/login.html", status_code=status_code, headers=headers, next_path=next_path,
                        email=email, error=error, notice=notice, login_options=options)


@post("/login", name="login_submit")
async def login_submit(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the password, throttle failures, rotate the session and redirect to ``next``."""
    form = await request.form()
    email = normalize_email(str(form.get("email", "")))[:320]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "")), "")
    runtime = ctx.runtime
    account_key, address_key = f"{ctx.tenant.id}:{email}", f"ip:{ctx.ip}"
    wait = max(await runtime.login_by_account.retry_after(account_key),
               await runtime.login_by_address.retry_after(address_key))
    if wait:
        async with atomic():
            await emit(ctx, "auth.login.throttled", target=Target("user", None, email), outcome="denied")
        minutes = max(1, round(wait / 60))
        return await login_form(
            ctx, status_code=429, headers={"Retry-After": str(wait)}, next_path=next_path, email=email,
            error=f"Too many sign-in attempts. Try again in {minutes} minute{'s' * (minutes != 1)}.",
        )
    refusal = await runtime.plugins.first("portal_password_login_policy", tenant=ctx.tenant, ctx=ctx, email=email)
    if refusal:
        async with atomic():
            await emit(ctx, "auth.login.failed", target=Target("user", None, email), outcome="denied",
                       data={"reason": "password_login_refused"})
        return await login_form(ctx, status_code=403, next_path=next_path, email=email, error=str(refusal))
    user = await find_user(ctx.tenant.id, email) if email else None
    if not runtime.passwords.verify(user["password_hash"] if user else None, password):
        await runtime.login_by_account.hit(account_key)
        await runtime.login_by_address.hit(address_key)
        async with atomic():
            await emit(ctx, "auth.login.failed", target=Target("user", str(user["id"]) if user else None, email),
                       outcome="failure", data={"reason": "bad_credentials" if user else "unknown_user"})
        return await login_form(ctx, status_code=400, next_path=next_path, email=email, error=GENERIC_FAILURE)
    if await is_enabled(ctx.tenant.id, user["id"]):
        async with atomic():
            if runtime.passwords.needs_rehash(user["password_hash"]):
                await User.update({User.password_hash: runtime.passwords.hash(password)}).where(User.id == user["id"])
            challenge = await start_challenge(ctx, user["id"], next_path)
            await emit(ctx, "auth.login.second_factor_required", target=Target("user", str(user["id"]), user["email"]))
        response = Redirect("/login/2fa")
        set_challenge_cookie(response, ctx, challenge)
        return response
    await runtime.login_by_account.reset(account_key)
    async with atomic():
        token = await start_session(ctx, user["id"], "password")
        updates: dict[Any, Any] = {User.last_login_at: utcnow()}
        if runtime.passwords.needs_rehash(user["password_hash"]):
            updates[User.password_hash] = runtime.passwords.hash(password)
        await User.update(updates).where(User.id == user["id"])
        ctx.user = CurrentUser(user["id"], user["email"], user["name"], user["is_tenant_admin"])
        await emit(ctx, "auth.login.succeeded", target=Target("user", str(user["id"]), user["email"]))
    response = Redirect(next_path or await landing_path(ctx))
    set_session_cookie(response, ctx, token)
    return response


async def _challenge_page(ctx: Ctx, *, status_code: int = 200, headers: dict[str, str] | None = None,
                          error: str | None = None, recovery: bool = False) -> Response[Any]:
    return await render(ctx, "auth/two_factor.html", status_code=status_code, headers=headers, error=error,
                        recovery=recovery)


def _restart_login(ctx: Ctx, notice: str = "expired") -> Response[Any]:
    response = Redirect(f"/login?notice={notice}")
    set_challenge_cookie(response, ctx, None)
    return response


@get("/login/2fa", name="login_2fa")
async def two_factor_page(ctx: Ctx, request: Request[Any, Any, Any],
                          method: Annotated[str | None, QueryParameter(name="method")] = None) -> Response[Any]:
    """Second sign-in step: the authenticator code (or a recovery code) after a correct password."""
    if ctx.user is not None:
        return Redirect(await landing_path(ctx))
    if await load_challenge(ctx, request.cookies.get(CHALLENGE_COOKIE)) is None:
        return _restart_login(ctx)
    return await _challenge_page(ctx, recovery=method == "recovery")


@post("/login/2fa", name="login_2fa_submit")
async def two_factor_submit(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the second factor; only now is the session created (a new token: rotation)."""
    challenge = await load_challenge(ctx, request.cookies.get(CHALLENGE_COOKIE))
    if challenge is None:
        return _restart_login(ctx)
    form = await request.form()
    code = str(form.get("code", ""))[:64]
    recovery = form.get("method") == "recovery"
    runtime = ctx.runtime
    user_id = challenge["user"]
    target = Target("user", str(user_id), challenge["email"])
    limiter, key = code_throttle(runtime), throttle_key(ctx.tenant.id, user_id)
    wait = await limiter.retry_after(key)
    if wait:
        async with atomic():
            await emit(ctx, "auth.login.throttled", target=target, outcome="denied", data={"step": "second_factor"})
        minutes = max(1, round(wait / 60))
        return await _challenge_page(
            ctx, status_code=429, headers={"Retry-After": str(wait)}, recovery=recovery,
            error=f"Too many wrong codes. Try again in {minutes} minute{'s' * (minutes != 1)}.",
        )
    if not code.strip():
        return await _challenge_page(ctx, status_code=400, recovery=recovery, error="Enter the code.")
    async with atomic():
        method = await verify_second_factor(runtime, ctx.tenant.id, user_id, code)
        if method is None:
            left = await count_failure(challenge["id"])
            await emit(ctx, "auth.login.failed", target=target, outcome="failure",
                       data={"reason": "bad_second_factor", "attempts_left": left})
        elif await consume(challenge["id"]):
            token = await start_session(ctx, user_id, "password")
            await UserSession.update({UserSession.second_factor: method}).where(UserSession.id == ctx.session_id)
            await User.update({User.last_login_at: utcnow()}).where(User.id == user_id)
            ctx.user = CurrentUser(user_id, challenge["email"], challenge["name"], challenge["is_tenant_admin"])
            if method == "recovery":
                await emit(ctx, "account.recovery_code.used", target=target)
            await emit(ctx, "auth.login.succeeded", target=target, data={"second_factor": method})
        else:
            return _restart_login(ctx)
    if method is None:
        await limiter.hit(key)
        if left == 0:
            return _restart_login(ctx, "too-many-codes")
        return await _challenge_page(
            ctx, status_code=400, recovery=recovery,
            error=f"That code is not valid. {left} attempt{'s' * (left != 1)} left.",
        )
    await limiter.reset(key)
    await runtime.login_by_account.reset(f"{ctx.tenant.id}:{challenge['email']}")
    response = Redirect(challenge["next_path"] or await landing_path(ctx))
    set_session_cookie(response, ctx, token)
    set_challenge_cookie(response, ctx, None)
    return response


@post("/logout", name="logout")
async def logout(ctx: Ctx) -> Response[Any]:
    """End this session everywhere (the server forgets it) and clear the cookie."""
    if ctx.user is not None:
        async with atomic():
            await emit(ctx, "auth.logout", target=Target("user", str(ctx.user.id), ctx.user.email))
            await end_session(ctx)
    response = Redirect("/login")
    set_session_cookie(response, ctx, None)
    return response


AUTH_HANDLERS = [home, login_page, login_submit, two_factor_page, two_factor_submit, logout,
                 *PASSWORD_RESET_HANDLERS]
