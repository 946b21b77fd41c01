"""Render pages in the tenant's theme.

``render(ctx, "team/members.html", members=...)`` fills the base context every
page needs (tenant, brand, user, navigation, organizations, CSRF token, unread
notifications) and returns an HTML ``Response``.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.utils.scope.state import ScopeState

from core.context import RequestContext
from core.contracts import NavItem
from core.plugins import visible_nav


def csrf_token(ctx: RequestContext) -> str:
    """The CSRF token forms must post back as ``_csrf_token`` (Litestar's double-submit token)."""
    if ctx.request is None:
        return ""
    token = ScopeState.from_scope(ctx.request.scope).csrf_token
    return token if isinstance(token, str) else ""


async def navigation(ctx: RequestContext) -> list[NavItem]:
    """Navigation items of enabled plugins the user may follow (``ctx.can``, same as the guards)."""
    if ctx.organization is None:
        return []
    items: list[NavItem] = []
    for _slug, contributed in await ctx.runtime.plugins.call("portal_nav_items", tenant=ctx.tenant, ctx=ctx):
        items.extend(contributed)
    return visible_nav(items, ctx.can, ctx.organization.slug)


async def page_context(ctx: RequestContext) -> dict[str, Any]:
    """What every themed page can use."""
    from core.identity import user_organizations
    from core.notifications import unread_count

    css_hash, _css = ctx.runtime.themes.tenant_css(ctx.tenant)
    organizations = await user_organizations(ctx) if ctx.user else []
    return {
        "ctx": ctx,
        "tenant": ctx.tenant,
        "brand": ctx.tenant.branding,
        "product_name": ctx.tenant.product_name,
        "theme": ctx.theme,
        "user": ctx.user,
        "organization": ctx.organization,
        "organizations": organizations,
        "role": ctx.role,
        "can": ctx.can,
        "nav_items": await navigation(ctx),
        "csrf_token": csrf_token(ctx),
        "stylesheet_url": f"/assets/brand/{css_hash}.css",
        "logo_url": f"/assets/logo?v={ctx.tenant.version}",
        "unread_notifications": await unread_count(ctx) if ctx.user else 0,
        "support_view": ctx.cache.get("support_view"),
        "request_path": ctx.request.url.path if ctx.request is not None else "/",
        "debug": ctx.runtime.settings.debug,
        "dev_mail": ctx.runtime.settings.mail_backend == "dev",
    }


async def render_string(ctx: RequestContext, template: str, **context: Any) -> str:
    """Render a template of the tenant's theme to a string."""
    env = ctx.runtime.themes.environment(ctx.theme)
    base = await page_context(ctx)
    base.update(context)
    return env.get_template(template).render(**base)


async def render(ctx: RequestContext, template: str, *, status_code: int = 200,
                 headers: dict[str, str] | None = None, **context: Any) -> Response[str]:
    """A themed HTML page."""
    html = await render_string(ctx, template, **context)
    return Response(html, status_code=status_code, media_type="text/html",
                    headers={"Cache-Control": "private, no-cache", **(headers or {})})
