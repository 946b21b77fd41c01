"""HTTP handlers of the team section (``/o/{org}/team``) and of invitation links (``/invite/{token}``).

Every change is a plain form POST that works without JavaScript (redirect back
with a notice, or the page again with the error and a 4xx). With JavaScript,
htmx posts the same forms and swaps only the changed row; ``team.js`` applies the
change optimistically and puts it back, with the server's message, if refused.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from core.context import Ctx, RequestContext
from core.guards import requires
from core.identity import landing_path, set_session_cookie
from core.rendering import render
from core.security import password_problem
from core.tables import User
from plugins.team import invitations as inv
from plugins.team import queries, service
from plugins.team.display import HELPERS
from plugins.team.rules import ROLE_HINTS, ROLE_LABELS, TeamError, assignable_roles, can_manage_member

TEAM_READ = requires("team.read")
TEAM_MANAGE = requires("team.manage")
NOTICES = {
    "invited": "Invitation sent.",
    "invited_many": "Invitations sent.",
    "resent": "A new invitation link was sent; the previous link no longer works.",
    "revoked": "The invitation was revoked; its link no longer works.",
    "role": "The role was changed.",
    "removed": "The member was removed and signed out.",
    "transferred": "Ownership was transferred. You are now an admin.",
}
Req = Request[Any, Any, Any]


def is_htmx(request: Req) -> bool:
    """An in-place update from htmx (the page stays; only a fragment comes back)."""
    return request.headers.get("hx-request") == "true"


def _base(ctx: RequestContext) -> str:
    return ctx.org_url("team")


async def _team_context(ctx: RequestContext, *, q: str = "", after: str | None = None,
                        before: str | None = None) -> dict[str, Any]:
    assert ctx.organization is not None
    manage = ctx.can("team.manage")
    return {
        "page": await queries.member_page(ctx.tenant.id, ctx.organization.id, query=q, after=after, before=before),
        "seats": await queries.seat_status(ctx, ctx.organization),
        "invitations": await queries.open_invitations(ctx.tenant.id, ctx.organization.id) if manage else [],
        "assignable": assignable_roles(ctx.role) if manage else [],
        "role_labels": ROLE_LABELS, "role_hints": ROLE_HINTS, "can_manage_member": can_manage_member,
        "base": _base(ctx), "manage": manage, **HELPERS,
    }


async def _page(ctx: RequestContext, *, status_code: int = 200, q: str = "", after: str | None = None,
                before: str | None = None, **extra: Any) -> Response[Any]:
    context = await _team_context(ctx, q=q, after=after, before=before)
    extra.setdefault("errors", {})
    extra.setdefault("draft", {})
    return await render(ctx, "team/members.html", status_code=status_code, **context, **extra)


async def _refused(ctx: RequestContext, request: Req, error: TeamError) -> Response[Any]:
    """A refused change: the message for htmx to show, or the whole page with the error."""
    if is_htmx(request):
        return Response(error.message, status_code=error.status, media_type="text/plain")
    return await _page(ctx, status_code=error.status, error=error.message)


async def _fragment(ctx: RequestContext, template: str, **context: Any) -> Response[Any]:
    """A piece of the page for htmx, plus the seat summary swapped out of band."""
    assert ctx.organization is not None
    seats = await queries.seat_status(ctx, ctx.organization)
    return await render(ctx, template, seats=seats, oob=True, **await _row_context(ctx), **context)


async def _row_context(ctx: RequestContext) -> dict[str, Any]:
    return {"assignable": assignable_roles(ctx.role), "role_labels": ROLE_LABELS,
            "can_manage_member": can_manage_member, "base": _base(ctx), "manage": ctx.can("team.manage"),
            **HELPERS}


def _done(ctx: RequestContext, what: str) -> Redirect:
    return Redirect(f"{_base(ctx)}?done={what}")


@get("/", name="team_members", guards=[TEAM_READ])
async def members_page(ctx: Ctx, request: Req, q: FromQuery[str] = "", after: FromQuery[str | None] = None,
                       before: FromQuery[str | None] = None, done: FromQuery[str | None] = None) -> Response[Any]:
    """Members (searchable, paged by keyset), pending invitations and the invite form."""
    if is_htmx(request) and request.headers.get("hx-target") == "member-list":
        context = await _team_context(ctx, q=q, after=after, before=before)
        return await render(ctx, "team/_member_list.html", **context)
    return await _page(ctx, q=q, after=after, before=before, notice=NOTICES.get(done or ""))


@post("/invitations", name="team_invite", guards=[TEAM_MANAGE])
async def invite(ctx: Ctx, request: Req) -> Response[Any]:
    """Invite one or several email addresses with a role (all or nothing)."""
    form = await request.form()
    emails, role = str(form.get("emails", ""))[:20000], str(form.get("role", ""))
    try:
        created = await inv.create_invitations(ctx, emails, role)
    except TeamError as error:
        return await _page(ctx, status_code=error.status, errors={error.field or "emails": error.message},
                           draft={"emails": emails, "role": role})
    return _done(ctx, "invited" if len(created) == 1 else "invited_many")


@post("/invitations/{invitation_id:uuid}/resend", name="team_invite_resend", guards=[TEAM_MANAGE])
async def resend(ctx: Ctx, request: Req, invitation_id: FromPath[uuid.UUID]) -> Response[Any]:
    """New link, old link dead, expiry restarted."""
    try:
        await inv.resend_invitation(ctx, invitation_id)
    except TeamError as error:
        return await _refused(ctx, request, error)
    if is_htmx(request):
        assert ctx.organization is not None
        rows = [r for r in await queries.open_invitations(ctx.tenant.id, ctx.organization.id)
                if r["id"] == invitation_id]
        return await _fragment(ctx, "team/_invitation_row.html", invitation=rows[0] if rows else None,
                               flash=NOTICES["resent"])
    return _done(ctx, "resent")


@post("/invitations/{invitation_id:uuid}/revoke", name="team_invite_revoke", guards=[TEAM_MANAGE])
async def revoke(ctx: Ctx, request: Req, invitation_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Kill an invitation; its seat is free again."""
    try:
        await inv.revoke_invitation(ctx, invitation_id)
    except TeamError as error:
        return await _refused(ctx, request, error)
    if is_htmx(request):
        return await _fragment(ctx, "team/_gone.html", flash=NOTICES["revoked"])
    return _done(ctx, "revoked")


@post("/members/{membership_id:uuid}/role", name="team_member_role", guards=[TEAM_MANAGE])
async def change_role(ctx: Ctx, request: Req, membership_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Give a member another role (never above your own; never the last owner's)."""
    form = await request.form()
    try:
        changed = await service.change_role(ctx, membership_id, str(form.get("role", "")))
    except TeamError as error:
        return await _refused(ctx, request, error)
    if is_htmx(request):
        assert ctx.organization is not None
        if ctx.user is not None and changed["user_id"] == ctx.user.id:  # your own rights changed: reload all
            return Response("", status_code=200, headers={"HX-Refresh": "true"})
        member = await queries.member_row(ctx.tenant.id, ctx.organization.id, membership_id)
        return await _fragment(ctx, "team/_member_row.html", member=member, flash=NOTICES["role"])
    return _done(ctx, "role")


@get("/members/{membership_id:uuid}/remove", name="team_member_remove_confirm", guards=[TEAM_MANAGE])
async def remove_confirm(ctx: Ctx, request: Req, membership_id: FromPath[uuid.UUID]) -> Response[Any]:
    """The confirmation step of removing someone (the no-JavaScript path)."""
    try:
        member = await service.find_member(ctx, membership_id)
    except TeamError as error:
        return await _refused(ctx, request, error)
    return await render(ctx, "team/remove.html", member=member, base=_base(ctx), role_labels=ROLE_LABELS)


@post("/members/{membership_id:uuid}/remove", name="team_member_remove", guards=[TEAM_MANAGE])
async def remove(ctx: Ctx, request: Req, membership_id: FromPath[uuid.UUID]) -> Response[Any]:
    """Remove a member; their sessions end at once."""
    try:
        await service.remove_member(ctx, membership_id)
    except TeamError as error:
        return await _refused(ctx, request, error)
    if is_htmx(request):
        return await _fragment(ctx, "team/_gone.html", flash=NOTICES["removed"])
    return _done(ctx, "removed")


async def _leave_page(ctx: RequestContext, *, status_code: int = 200, error: str | None = None) -> Response[Any]:
    assert ctx.organization is not None
    last_owner = ctx.role == "owner" and await queries.owner_count(ctx.tenant.id, ctx.organization.id) <= 1
    return await render(ctx, "team/leave.html", status_code=status_code, last_owner=last_owner, error=error,
                        base=_base(ctx))


@get("/leave", name="team_leave_confirm", guards=[TEAM_READ])
async def leave_confirm(ctx: Ctx) -> Response[Any]:
    """Confirm leaving the organization (or learn why the last owner cannot)."""
    return await _leave_page(ctx)


@post("/leave", name="team_leave", guards=[TEAM_READ])
async def leave(ctx: Ctx) -> Response[Any]:
    """Leave the organization; you land in your next organization or your account."""
    try:
        await service.leave_organization(ctx)
    except TeamError as error:
        return await _leave_page(ctx, status_code=error.status, error=error.message)
    ctx.cache.pop("organizations", None)
    return Redirect(await landing_path(ctx))


async def _transfer_page(ctx: RequestContext, *, status_code: int = 200, errors: dict[str, str] | None = None,
                         draft: dict[str, str] | None = None) -> Response[Any]:
    return await render(ctx, "team/transfer.html", status_code=status_code, errors=errors or {},
                        draft=draft or {}, base=_base(ctx))


@get("/transfer", name="team_transfer_form", guards=[TEAM_READ])
async def transfer_form(ctx: Ctx, request: Req) -> Response[Any]:
    """Transfer ownership: owners only."""
    if ctx.role != "owner":
        return await _refused(ctx, request, TeamError("Only an owner can transfer ownership.", status=403))
    return await _transfer_page(ctx)


@post("/transfer", name="team_transfer", guards=[TEAM_READ])
async def transfer(ctx: Ctx, request: Req) -> Response[Any]:
    """Make another member the owner (you become admin), confirmed by typing the organization's name."""
    form = await request.form()
    email, confirm = str(form.get("email", ""))[:320], str(form.get("confirm", ""))[:200]
    try:
        await service.transfer_ownership(ctx, email, confirm)
    except TeamError as error:
        if error.status == 403:
            return await _refused(ctx, request, error)
        return await _transfer_page(ctx, status_code=error.status, errors={error.field or "email": error.message},
                                    draft={"email": email})
    return _done(ctx, "transferred")


# -- invitation links (public, on the tenant's host) ----------------------------------------------------------

INVITE_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
STATE_STATUS = {"invalid": 404, "expired": 410, "accepted": 410, "revoked": 410}


async def _invite_view(ctx: RequestContext, token: str, found: inv.Lookup, *, status_code: int = 200,
                       **context: Any) -> Response[Any]:
    """Decide what the person opening the link sees (and return that page)."""
    view = found.state
    refusal = None
    if view == "pending":
        invited = found.invitation["email"] if found.invitation else ""
        if ctx.user is not None:
            view = "join" if ctx.user.email == invited else "wrong_user"
        elif await User.exists().where(User.tenant == ctx.tenant.id, User.email == invited):
            view = "sign_in"
        else:
            refusal = await ctx.runtime.plugins.first("portal_password_login_policy", tenant=ctx.tenant, ctx=ctx,
                                                      email=invited)
            view = "sso_required" if refusal else "register"
    if status_code == 200:
        status_code = STATE_STATUS.get(view, 403 if view == "wrong_user" else 200)
    return await render(ctx, "team/invite.html", status_code=status_code, headers=INVITE_HEADERS, view=view,
                        found=found, token=token, refusal=refusal, role_labels=ROLE_LABELS,
                        errors=context.pop("errors", {}), draft=context.pop("draft", {}), **HELPERS, **context)


@get("/invite/{token:str}", name="team_invite_page")
async def invite_page(ctx: Ctx, token: FromPath[str]) -> Response[Any]:
    """What an invitation link shows: join, create an account, sign in first, or why it no longer works."""
    return await _invite_view(ctx, token, await inv.lookup(ctx, token))


@post("/invite/{token:str}", name="team_invite_accept")
async def invite_accept(ctx: Ctx, request: Req, token: FromPath[str]) -> Response[Any]:
    """Accept: one click for the invited, signed-in user; name and password for a new person."""
    found = await inv.lookup(ctx, token)
    if found.state != "pending" or found.invitation is None or found.organization is None:
        return await _invite_view(ctx, token, found)
    landing = f"/o/{found.organization['slug']}/"
    try:
        if ctx.user is not None:
            if ctx.user.email != found.invitation["email"]:
                return await _invite_view(ctx, token, found)
            await inv.accept_as_user(ctx, found)
            return Redirect(landing)
        if await User.exists().where(User.tenant == ctx.tenant.id,
                                         User.email == found.invitation["email"]):
            return await _invite_view(ctx, token, found)
        if await ctx.runtime.plugins.first("portal_password_login_policy", tenant=ctx.tenant, ctx=ctx,
                                           email=found.invitation["email"]):
            return await _invite_view(ctx, token, found, status_code=403)
        form = await request.form()
        name = str(form.get("name", "")).strip()[:200]
        password = str(form.get("password", ""))[:1024]
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "Enter your name."
        if problem := password_problem(password, found.invitation["email"]):
            errors["password"] = problem
        elif password != str(form.get("confirm_password", "")):
            errors["confirm_password"] = "The two passwords do not match."
        if errors:
            return await _invite_view(ctx, token, found, status_code=400, errors=errors, draft={"name": name})
        session_token = await inv.accept_as_new_user(ctx, found, name, password)
    except TeamError as error:
        return await _invite_view(ctx, token, await inv.lookup(ctx, token), status_code=error.status,
                                  error=error.message)
    response = Redirect(landing)
    set_session_cookie(response, ctx, session_token)
    return response


PAGES = [members_page, invite, resend, revoke, change_role, remove_confirm, remove, leave_confirm, leave,
         transfer_form, transfer]
PUBLIC = [invite_page, invite_accept]
