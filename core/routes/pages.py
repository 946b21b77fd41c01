"""Core pages: organization overview, notifications, the dev outbox, health."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from litestar.response import Redirect

from core.context import Ctx
from core.contracts import DashboardCard
from core.db import utcnow
from core.guards import login_required, organization_member
from core.identity import safe_next
from core.rendering import render
from core.tables import DevMail, Notification


@get("/o/{org:str}/", name="overview", guards=[organization_member])
async def overview(ctx: Ctx) -> Response[Any]:
    """The organization's home: cards from every enabled plugin the user may see."""
    cards: list[DashboardCard] = []
    for _slug, contributed in await ctx.runtime.plugins.call("portal_dashboard_cards", tenant=ctx.tenant, ctx=ctx):
        cards.extend(c for c in contributed if c.permission is None or ctx.can(c.permission))
    cards.sort(key=lambda card: (card.order, card.title))
    return await render(ctx, "org/overview.html", cards=cards)


@get("/notifications", name="notifications", guards=[login_required])
async def notifications(ctx: Ctx) -> Response[Any]:
    """The user's notifications, newest first."""
    assert ctx.user is not None
    rows = await Notification.select().where(
        Notification.user == ctx.user.id, Notification.tenant == ctx.tenant.id
    ).order_by(Notification.created_at, ascending=False).limit(100)
    return await render(ctx, "notifications.html", notifications=rows)


@post("/notifications/read", name="notifications_read", guards=[login_required])
async def mark_read(ctx: Ctx, request: Request[Any, Any, Any]) -> Redirect:
    """Mark every notification read (the bell goes quiet)."""
    assert ctx.user is not None
    form = await request.form()
    await Notification.update({Notification.read_at: utcnow()}).where(
        Notification.user == ctx.user.id, Notification.tenant == ctx.tenant.id, Notification.read_at.is_null()
    )
    return Redirect(safe_next(str(form.get("next", "")), "/notifications"))


@get("/_dev/mail", name="dev_mail")
async def dev_mail(ctx: Ctx, id: FromQuery[str | None] = None) -> Response[Any]:
    """Development outbox: what this tenant's portal would have emailed (dev mail backend only)."""
    if ctx.runtime.settings.mail_backend != "dev":
        raise NotFoundException()
    rows = await DevMail.select().where(DevMail.tenant == ctx.tenant.id).order_by(
        DevMail.created_at, ascending=False).limit(100)
    selected = next((row for row in rows if str(row["id"]) == id), rows[0] if rows else None)
    return await render(ctx, "dev_mail.html", mails=rows, selected=selected)


@get("/healthz", name="healthz", opt={"platform": True}, include_in_schema=False)
async def healthz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Liveness and database check for load balancers (any host, no tenant needed)."""
    from core.tables import Tenant

    try:
        await Tenant.count()
    except Exception:  # noqa: BLE001 - report, don't raise
        return Response({"status": "error", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": "ok"})


PAGE_HANDLERS = [overview, notifications, mark_read, dev_mail, healthz]
