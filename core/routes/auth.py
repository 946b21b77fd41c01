"""Sign in and out with email and password.

Failures say only "email or password is incorrect" (no account probing) and
count against both the account and the address; past the limit the form answers
429 with ``Retry-After``. A successful login always starts a new session.
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
from core.rendering import render
from core.tables import User

GENERIC_FAILURE = "Email or password is incorrect."


@get("/", name="home")
async def home(ctx: Ctx) -> Redirect:
    """The bare host: your organization when signed in, the sign-in form otherwise."""
    return Redirect(await landing_path(ctx) if ctx.user else "/login")


@get("/login", name="login")
async def login_page(ctx: Ctx,
                     next_path: Annotated[str | None, QueryParameter(name="next")] = None) -> Response[Any]:
    """The sign-in form (already signed in: straight to the destination)."""
    if ctx.user is not None:
        return Redirect(safe_next(next_path, await landing_path(ctx)))
    return await login_form(ctx, next_path=safe_next(next_path, ""))


async def login_form(ctx: Ctx, *, status_code: int = 200, headers: dict[str, str] | None = None,
                     next_path: str = "", email: str = "", error: str | None = None) -> Response[Any]:
    """The login page with every plugin's extra sign-in options."""
    options = [option for _slug, contributed in
               await ctx.runtime.plugins.call("portal_login_options", tenant=ctx.tenant, ctx=ctx)
               for option in contributed]
    return await render(ctx, "auth/login.html", status_code=status_code, headers=headers, next_path=next_path,
                        email=email, error=error, login_options=options)


@post("/login", name="login_submit")
async def login_submit(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Check the password, throttle failures, rotate the session and redirect to ``next``."""
    form = await request.form()
    email = normalize_email(str(form.get("email", "")))[:320]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "")), "")
    runtime = ctx.runtime
    account_key, address_key = f"{ctx.tenant.id}:{email}", f"ip:{ctx.ip}"
    wait = max(runtime.login_by_account.retry_after(account_key), runtime.login_by_address.retry_after(address_key))
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
        runtime.login_by_account.hit(account_key)
        runtime.login_by_address.hit(address_key)
        async with atomic():
            await emit(ctx, "auth.login.failed", target=Target("user", str(user["id"]) if user else None, email),
                       outcome="failure", data={"reason": "bad_credentials" if user else "unknown_user"})
        return await login_form(ctx, status_code=400, next_path=next_path, email=email, error=GENERIC_FAILURE)
    runtime.login_by_account.reset(account_key)
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


AUTH_HANDLERS = [home, login_page, login_submit, logout]
