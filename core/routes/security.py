"""``/account/security``: two-factor authentication and the user's sessions.

Lives in the core (not the team plugin) because sign-in and sessions are core.

- Turning 2FA on needs the current password and a code from the authenticator
  (proving the QR code was scanned); the ten recovery codes are shown exactly once.
- Turning it off, or issuing new recovery codes, needs the password *and* a code.
- Every 2FA change rotates this session and ends all others.
- Sessions: each active session of the user on this tenant (device, address,
  started, last seen, how it signed in, "this session"); revoke one or all others.
  Every query is scoped to the tenant and the user, so another account's (or
  another tenant's) session id simply does not exist here (404).
- Organization owners find here the switch "require two-factor authentication for
  members" of each organization they own (``core.two_factor_policy``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from core import totp
from core.context import Ctx
from core.db import as_utc, atomic, utcnow
from core.events import Target, emit
from core.guards import login_required
from core.identity import revoke_user_sessions, rotate_session, set_session_cookie, user_organizations
from core.rendering import render
from core.tables import User, UserSession
from core.two_factor_policy import is_owner, owned_organizations, set_required
from core.useragent import describe

NO_STORE = {"Cache-Control": "no-store"}
NOTICES = {
    "2fa-disabled": "Two-factor authentication is off. Other sessions were signed out.",
    "session-revoked": "The session was signed out.",
    "others-revoked": "All your other sessions were signed out.",
    "org-required": "Members of the organization now need two-factor authentication.",
    "org-optional": "Two-factor authentication is now optional in the organization.",
}
AUTH_LABELS = {"password": "Password", "oidc": "Single sign-on (OIDC)", "saml": "Single sign-on (SAML)",
               "sso": "Single sign-on", "invite": "Invitation"}
FACTOR_LABELS = {"totp": "authenticator app", "recovery": "recovery code"}


def sign_in_label(auth_method: str | None, second_factor: str | None) -> str:
    """How a session signed in, for people: "Password + authenticator app"."""
    label = AUTH_LABELS.get(auth_method or "", (auth_method or "Unknown").upper())
    return f"{label} + {FACTOR_LABELS[second_factor]}" if second_factor in FACTOR_LABELS else label


def ago(moment: Any, now: Any) -> str:
    """``"just now"``, ``"5 minutes ago"``, ``"3 days ago"``: how long since ``moment``."""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' * (count != 1)} ago"
    return "just now"


async def active_sessions(ctx: Ctx) -> list[dict[str, Any]]:
    """The user's live sessions on this tenant, most recently used first."""
    assert ctx.user is not None
    now = utcnow()
    idle = timedelta(seconds=ctx.runtime.settings.session_idle_timeout)
    rows = await UserSession.select(
        UserSession.id, UserSession.auth_method, UserSession.second_factor, UserSession.created_at,
        UserSession.last_seen_at, UserSession.expires_at, UserSession.ip, UserSession.user_agent,
    ).where(
        UserSession.tenant == ctx.tenant.id, UserSession.user == ctx.user.id, UserSession.revoked_at.is_null(),
        UserSession.expires_at > now,
    ).order_by(UserSession.last_seen_at, ascending=False).limit(200)
    sessions = []
    for row in rows:
        last_seen = as_utc(row["last_seen_at"])
        if last_seen + idle <= now:
            continue
        sessions.append({
            **row, "created_at": as_utc(row["created_at"]), "last_seen_at": last_seen,
            "device": describe(row["user_agent"]), "how": sign_in_label(row["auth_method"], row["second_factor"]),
            "current": row["id"] == ctx.session_id, "last_seen_ago": ago(last_seen, now),
            "created_label": as_utc(row["created_at"]).strftime("%d %b %Y, %H:%M UTC"),
        })
    sessions.sort(key=lambda s: not s["current"])
    return sessions


async def security_page(ctx: Ctx, *, status_code: int = 200, errors: dict[str, str] | None = None,
                        notice: str | None = None, open_form: str | None = None) -> Response[Any]:
    """The account security page (also re-rendered with a form's errors)."""
    assert ctx.user is not None
    credential = await totp.credential(ctx.tenant.id, ctx.user.id)
    enabled = credential is not None and credential["confirmed_at"] is not None
    return await render(
        ctx, "account/security.html", status_code=status_code, errors=errors or {}, notice=notice,
        open_form=open_form, twofa_enabled=enabled,
        twofa_since=as_utc(credential["confirmed_at"]).strftime("%d %b %Y") if enabled else None,
        recovery_left=await totp.remaining_recovery_codes(ctx.tenant.id, ctx.user.id) if enabled else 0,
        sessions=await active_sessions(ctx), owned=await owned_organizations(ctx.tenant.id, ctx.user.id),
    )


@get("/account/security", name="account_security", guards=[login_required])
async def security_overview(ctx: Ctx, done: FromQuery[str | None] = None) -> Response[Any]:
    """Two-factor status and active sessions."""
    return await security_page(ctx, notice=NOTICES.get(done or ""))


async def _setup_page(ctx: Ctx, *, status_code: int = 200, errors: dict[str, str] | None = None,
                      required_by: str | None = None) -> Response[Any]:
    assert ctx.user is not None
    async with atomic():
        secret = await totp.enrolment_secret(ctx.runtime, ctx.tenant.id, ctx.user.id)
    issuer = ctx.tenant.product_name
    uri = totp.provisioning_uri(secret, ctx.user.email, issuer)
    return await render(ctx, "account/security_setup.html", status_code=status_code, headers=NO_STORE,
                        errors=errors or {}, qr_svg=totp.qr_svg(uri, f"QR code for {issuer}"),
                        secret_groups=totp.group_secret(secret), issuer=issuer, required_by=required_by)


@get("/account/security/2fa/setup", name="account_2fa_setup", guards=[login_required])
async def setup_page(ctx: Ctx, required: FromQuery[str | None] = None) -> Response[Any]:
    """Enrolment: scan the QR code, then confirm with a code and the password."""
    assert ctx.user is not None
    if await totp.is_enabled(ctx.tenant.id, ctx.user.id):
        return Redirect("/account/security")
    required_by = next((org["name"] for org in await user_organizations(ctx) if org["slug"] == required), None)
    return await _setup_page(ctx, required_by=required_by)


async def _throttled(ctx: Ctx) -> int:
    assert ctx.user is not None
    return await totp.code_throttle(ctx.runtime).retry_after(totp.throttle_key(ctx.tenant.id, ctx.user.id))


async def _count_wrong_code(ctx: Ctx) -> None:
    assert ctx.user is not None
    await totp.code_throttle(ctx.runtime).hit(totp.throttle_key(ctx.tenant.id, ctx.user.id))


async def _password_ok(ctx: Ctx, password: str) -> bool:
    assert ctx.user is not None
    row = await User.select(User.password_hash).where(User.id == ctx.user.id, User.tenant == ctx.tenant.id).first()
    return ctx.runtime.passwords.verify(row["password_hash"] if row else None, password)


def _too_many(wait: int) -> str:
    minutes = max(1, round(wait / 60))
    return f"Too many wrong codes. Try again in {minutes} minute{'s' * (minutes != 1)}."


async def _end_other_sessions(ctx: Ctx, second_factor: str | None = None) -> tuple[str, int]:
    """Rotate this session and end every other one (after any 2FA change)."""
    assert ctx.user is not None
    previous = await UserSession.select(UserSession.second_factor).where(UserSession.id == ctx.session_id).first()
    token = await rotate_session(ctx)
    factor = second_factor if second_factor is not None else (previous["second_factor"] if previous else "")
    await UserSession.update({UserSession.second_factor: factor}).where(UserSession.id == ctx.session_id)
    ended = await revoke_user_sessions(ctx.tenant.id, ctx.user.id, keep=ctx.session_id)
    return token, ended


async def _codes_page(ctx: Ctx, codes: list[str], token: str, *, fresh: bool) -> Response[Any]:
    response = await render(ctx, "account/recovery_codes.html", headers=NO_STORE, codes=codes, fresh=fresh)
    set_session_cookie(response, ctx, token)
    return response


@post("/account/security/2fa/setup", name="account_2fa_confirm", guards=[login_required])
async def confirm_setup(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Switch 2FA on once the code from the app matches; show the recovery codes once."""
    assert ctx.user is not None
    if await totp.is_enabled(ctx.tenant.id, ctx.user.id):
        return Redirect("/account/security")
    form = await request.form()
    if wait := await _throttled(ctx):
        return await _setup_page(ctx, status_code=429, errors={"code": _too_many(wait)})
    errors: dict[str, str] = {}
    if not await _password_ok(ctx, str(form.get("current_password", ""))[:1024]):
        errors["current_password"] = "Your password is not correct."
    async with atomic():
        if not errors and not await totp.accept_totp(ctx.runtime, ctx.tenant.id, ctx.user.id,
                                                     str(form.get("code", "")), confirmed=False):
            errors["code"] = "That code does not match. Check the time on your phone and enter the newest code."
        if errors:
            await _count_wrong_code(ctx)
            return await _setup_page(ctx, status_code=400, errors=errors)
        await totp.confirm(ctx.tenant.id, ctx.user.id)
        codes = await totp.replace_recovery_codes(ctx.tenant.id, ctx.user.id)
        token, ended = await _end_other_sessions(ctx, "totp")
        await emit(ctx, "account.2fa.enabled", target=Target("user", str(ctx.user.id), ctx.user.email),
                   before={"two_factor": False}, after={"two_factor": True}, data={"other_sessions_ended": ended})
    return await _codes_page(ctx, codes, token, fresh=True)


async def _check_password_and_code(ctx: Ctx, form: Any, form_name: str) -> tuple[Response[Any] | None, str | None]:
    """Password + second factor for a sensitive change: an error page to return, or the factor used."""
    assert ctx.user is not None
    if wait := await _throttled(ctx):
        return await security_page(ctx, status_code=429, errors={f"{form_name}_code": _too_many(wait)},
                                   open_form=form_name), None
    errors: dict[str, str] = {}
    method = None
    if not await _password_ok(ctx, str(form.get("current_password", ""))[:1024]):
        errors[f"{form_name}_password"] = "Your password is not correct."
    else:
        method = await totp.verify_second_factor(ctx.runtime, ctx.tenant.id, ctx.user.id,
                                                 str(form.get("code", ""))[:64])
        if method is None:
            errors[f"{form_name}_code"] = "That code is not valid. Enter a current code or an unused recovery code."
    if errors:
        await _count_wrong_code(ctx)
        return await security_page(ctx, status_code=400, errors=errors, open_form=form_name), None
    return None, method


@post("/account/security/2fa/disable", name="account_2fa_disable", guards=[login_required])
async def disable_2fa(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Switch 2FA off (password and a code); other sessions end."""
    assert ctx.user is not None
    if not await totp.is_enabled(ctx.tenant.id, ctx.user.id):
        return Redirect("/account/security")
    form = await request.form()
    async with atomic():
        problem, method = await _check_password_and_code(ctx, form, "disable")
        if problem is not None:
            return problem
        if method == "recovery":
            await emit(ctx, "account.recovery_code.used", target=Target("user", str(ctx.user.id), ctx.user.email))
        await totp.disable(ctx.tenant.id, ctx.user.id)
        token, ended = await _end_other_sessions(ctx)
        await emit(ctx, "account.2fa.disabled", target=Target("user", str(ctx.user.id), ctx.user.email),
                   before={"two_factor": True}, after={"two_factor": False}, data={"other_sessions_ended": ended})
    response = Redirect("/account/security?done=2fa-disabled")
    set_session_cookie(response, ctx, token)
    return response


@post("/account/security/recovery-codes", name="account_recovery_codes", guards=[login_required])
async def regenerate_codes(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """New recovery codes (password and a code); the old ones stop working and other sessions end."""
    assert ctx.user is not None
    if not await totp.is_enabled(ctx.tenant.id, ctx.user.id):
        return Redirect("/account/security")
    form = await request.form()
    async with atomic():
        problem, method = await _check_password_and_code(ctx, form, "codes")
        if problem is not None:
            return problem
        if method == "recovery":
            await emit(ctx, "account.recovery_code.used", target=Target("user", str(ctx.user.id), ctx.user.email))
        codes = await totp.replace_recovery_codes(ctx.tenant.id, ctx.user.id)
        token, ended = await _end_other_sessions(ctx)
        await emit(ctx, "account.recovery_codes.regenerated", target=Target("user", str(ctx.user.id), ctx.user.email),
                   data={"other_sessions_ended": ended})
    return await _codes_page(ctx, codes, token, fresh=False)


@post("/account/security/sessions/{session_id:uuid}/revoke", name="account_session_revoke",
      guards=[login_required])
async def revoke_session(ctx: Ctx, session_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Sign one of my sessions out (my current one: the same as signing out)."""
    assert ctx.user is not None
    async with atomic():
        row = await UserSession.select(UserSession.user_agent, UserSession.ip).where(
            UserSession.id == session_id, UserSession.tenant == ctx.tenant.id, UserSession.user == ctx.user.id,
            UserSession.revoked_at.is_null()).first()
        if row is None:
            raise NotFoundException()
        await UserSession.update({UserSession.revoked_at: utcnow()}).where(
            UserSession.id == session_id, UserSession.tenant == ctx.tenant.id, UserSession.user == ctx.user.id)
        await emit(ctx, "account.session.revoked",
                   target=Target("session", str(session_id), describe(row["user_agent"])),
                   data={"ip": row["ip"], "current": session_id == ctx.session_id})
    if session_id == ctx.session_id:
        response = Redirect("/login")
        set_session_cookie(response, ctx, None)
        return response
    return Redirect("/account/security?done=session-revoked")


@post("/account/security/sessions/revoke-others", name="account_sessions_revoke_others", guards=[login_required])
async def revoke_other_sessions(ctx: Ctx) -> Response[Any]:
    """Sign out everywhere else."""
    assert ctx.user is not None
    async with atomic():
        ended = await revoke_user_sessions(ctx.tenant.id, ctx.user.id, keep=ctx.session_id)
        await emit(ctx, "account.sessions.revoked_others", target=Target("user", str(ctx.user.id), ctx.user.email),
                   data={"sessions_ended": ended})
    return Redirect("/account/security?done=others-revoked")


@post("/account/security/organizations/{org_slug:str}/require-2fa", name="account_org_require_2fa",
      guards=[login_required])
async def require_two_factor(ctx: Ctx, org_slug: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
    """An owner requires (or stops requiring) 2FA from the organization's members."""
    assert ctx.user is not None
    org = await is_owner(ctx.tenant.id, ctx.user.id, org_slug)
    if org is None:
        raise NotFoundException()
    required = (await request.form()).get("require") == "on"
    if required and not await totp.is_enabled(ctx.tenant.id, ctx.user.id):
        return await security_page(ctx, status_code=400, errors={
            f"org_{org_slug}": "Turn on two-factor authentication for your own account first."})
    if required != bool(org["require_2fa"]):
        async with atomic():
            await set_required(org["id"], required)
            await emit(ctx, "organization.two_factor_requirement.changed",
                       target=Target("organization", str(org["id"]), org["name"]), organization_id=org["id"],
                       before={"require_2fa": bool(org["require_2fa"])}, after={"require_2fa": required})
    return Redirect(f"/account/security?done=org-{'required' if required else 'optional'}")


SECURITY_HANDLERS = [security_overview, setup_page, confirm_setup, disable_2fa, regenerate_codes, revoke_session,
                     revoke_other_sessions, require_two_factor]
