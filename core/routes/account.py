"""``/account``: a user's own name, email and password (2FA and sessions: ``core.routes.security``).

Changing the email or the password needs the current password. A new password
ends every other session of the user and rotates this one.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect

from core.context import Ctx, CurrentUser
from core.db import atomic
from core.events import Target, changed_fields, emit
from core.guards import login_required
from core.identity import normalize_email, revoke_user_sessions, rotate_session, set_session_cookie
from core.rendering import render
from core.routes.security import SECURITY_HANDLERS
from core.security import password_problem
from core.tables import User

EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


async def _page(ctx: Ctx, *, status_code: int = 200, **context: Any) -> Response[Any]:
    user = await User.select(User.name, User.email).where(User.id == ctx.user.id).first()  # type: ignore[union-attr]
    return await render(ctx, "account/index.html", status_code=status_code, profile=user,
                        errors=context.pop("errors", {}), notice=context.pop("notice", None), **context)


@get("/account", name="account", guards=[login_required])
async def account_page(ctx: Ctx, saved: FromQuery[str | None] = None) -> Response[Any]:
    """Profile and password forms."""
    notices = {"profile": "Your profile was saved.", "password": "Your password was changed. Other sessions "
               "were signed out."}
    return await _page(ctx, notice=notices.get(saved or ""))


@post("/account/profile", name="account_profile", guards=[login_required])
async def update_profile(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Change name and email; a new email needs the current password and must be free on this tenant."""
    import re

    form = await request.form()
    assert ctx.user is not None
    name = str(form.get("name", "")).strip()[:200]
    email = normalize_email(str(form.get("email", "")))
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Enter your name."
    if not re.match(EMAIL_SHAPE, email) or len(email) > 320:
        errors["email"] = "Enter an email address like name@example.com."
    current = await User.select().where(User.id == ctx.user.id).first()
    if not errors and email != current["email"]:
        if not ctx.runtime.passwords.verify(current["password_hash"], str(form.get("current_password", ""))):
            errors["profile_password"] = "Enter your current password to change your email."
        elif await User.exists().where(User.tenant == ctx.tenant.id, User.email == email):
            errors["email"] = "Another account already uses this email."
    if errors:
        return await _page(ctx, status_code=400, errors=errors, draft={"name": name, "email": email})
    before, after = changed_fields({"name": current["name"], "email": current["email"]}, {"name": name, "email": email})
    if after:
        async with atomic():
            await User.update({User.name: name, User.email: email}).where(User.id == ctx.user.id)
            await emit(ctx, "account.profile.updated", target=Target("user", str(ctx.user.id), email),
                       before=before, after=after)
    return Redirect("/account?saved=profile")


@post("/account/password", name="account_password", guards=[login_required])
async def change_password(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Change the password: current one required; other sessions end, this one rotates."""
    form = await request.form()
    assert ctx.user is not None
    current = await User.select().where(User.id == ctx.user.id).first()
    new = str(form.get("new_password", ""))
    errors: dict[str, str] = {}
    if not ctx.runtime.passwords.verify(current["password_hash"], str(form.get("current_password", ""))):
        errors["current_password"] = "Your current password is not correct."
    elif problem := password_problem(new, current["email"]):
        errors["new_password"] = problem
    elif new != str(form.get("confirm_password", "")):
        errors["confirm_password"] = "The two new passwords do not match."
    if errors:
        return await _page(ctx, status_code=400, errors=errors)
    async with atomic():
        await User.update({User.password_hash: ctx.runtime.passwords.hash(new)}).where(User.id == ctx.user.id)
        token = await rotate_session(ctx)
        ended = await revoke_user_sessions(ctx.tenant.id, ctx.user.id, keep=ctx.session_id)
        await emit(ctx, "account.password.changed", target=Target("user", str(ctx.user.id), ctx.user.email),
                   data={"other_sessions_ended": ended})
    ctx.user = CurrentUser(ctx.user.id, current["email"], current["name"], current["is_tenant_admin"])
    response = Redirect("/account?saved=password")
    set_session_cookie(response, ctx, token)
    return response


ACCOUNT_HANDLERS = [account_page, update_profile, change_password, *SECURITY_HANDLERS]
