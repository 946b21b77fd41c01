"""Route guards: plain ``(connection, handler)`` functions, as Litestar expects.

The same ``ctx.can`` decides both what a guard lets through and what the
navigation shows. Not being a member of an organization looks exactly like the
organization not existing (404), so slugs of other customers cannot be probed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler

from core.context import RequestContext
from core.identity import resolve_membership
from core.middleware import CTX_KEY
from core.two_factor_policy import enforce as enforce_two_factor

Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]


class LoginRequired(NotAuthorizedException):
    """No signed-in user: pages redirect to the login form, the API answers 401."""


def context_of(connection: ASGIConnection[Any, Any, Any, Any]) -> RequestContext:
    """The request's context (the middleware made it); 404 on a host with no tenant."""
    ctx = connection.scope.get("state", {}).get(CTX_KEY)
    if ctx is None:
        raise NotFoundException()
    if ctx.request is None:
        ctx.request = connection
    return ctx


async def login_required(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Only signed-in users pass."""
    if context_of(connection).user is None:
        raise LoginRequired()


async def organization_member(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Members of the ``{org}`` in the path pass; everyone else sees a 404."""
    ctx = context_of(connection)
    if ctx.user is None:
        raise LoginRequired()
    if ctx.organization is None and not await resolve_membership(ctx, connection.path_params["org"]):
        raise NotFoundException()
    await enforce_two_factor(ctx)


def requires(*permissions: str) -> Guard:
    """A guard that lets through users holding every one of ``permissions`` (themed 403 otherwise)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        ctx = context_of(connection)
        if ctx.user is None and ctx.actor_override is None:
            raise LoginRequired()
        missing = [p for p in permissions if not ctx.can(p)]
        if missing:
            await record_denial(ctx, connection, missing)
            raise PermissionDeniedException(f"Your role does not allow this ({', '.join(missing)}).")

    guard.__name__ = f"requires_{'_'.join(p.replace('.', '_') for p in permissions)}"
    return guard


async def api_authenticated(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """``/api/v1`` routes: a plugin (``portal_authenticate_api``) must vouch for the Authorization header."""
    ctx = context_of(connection)
    if ctx.actor_override is not None:
        return
    header = connection.headers.get("authorization", "")
    if not header:
        raise NotAuthorizedException("Send an API key in the Authorization header: Bearer <key>.",
                                     headers={"WWW-Authenticate": "Bearer"})
    principal = (await ctx.runtime.plugins.call("portal_authenticate_api", tenant=ctx.tenant, strict=True,
                                                 ctx=ctx, authorization=header) or [(None, None)])[0][1]
    if principal is None:
        raise NotAuthorizedException("This API key is not valid.", headers={"WWW-Authenticate": "Bearer"})
    ctx.actor_override = principal.actor
    ctx.organization = principal.organization
    ctx.permissions = principal.permissions


DENIAL_LOG_INTERVAL = 60.0


async def record_denial(ctx: RequestContext, connection: ASGIConnection[Any, Any, Any, Any],
                        missing: list[str]) -> None:
    """Emit ``auth.permission.denied`` in its own transaction, at most once a minute per actor and path.

    The audit log then shows who probed what, without a scripted client flooding it.
    """
    from core.db import atomic
    from core.events import Target, emit
    limiter = ctx.runtime.limiter("denial_log", 1, DENIAL_LOG_INTERVAL)
    key = f"{ctx.actor.type}:{ctx.actor.id}:{connection.url.path}"
    if await limiter.retry_after(key):
        return
    await limiter.hit(key)
    async with atomic():
        await emit(ctx, "auth.permission.denied", outcome="denied",
                   target=Target("route", connection.url.path, f"{connection.method} {connection.url.path}"),
                   data={"missing": missing, "role": ctx.role})


def plugin_enabled(slug: str) -> Guard:
    """Routes of a plugin the tenant has not enabled answer 404, as if they did not exist."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        ctx = context_of(connection)
        if not ctx.runtime.plugins.is_enabled(slug, ctx.tenant):
            raise NotFoundException()

    guard.__name__ = f"plugin_enabled_{slug}"
    return guard


def plugin_api_authenticated(slug: str) -> Guard:
    """A plugin's API routes: 404 where the tenant has not enabled it, else ``api_authenticated``.

    One guard instead of two because Litestar copies the route handler for every guard
    it runs, and API routes are the hot path (usage ingest).
    """
    enabled = plugin_enabled(slug)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        await enabled(connection, handler)
        await api_authenticated(connection, handler)

    guard.__name__ = f"plugin_api_authenticated_{slug}"
    return guard


def provide_ctx(request: Request[Any, Any, Any]) -> RequestContext:
    """Dependency: handlers declare ``ctx: RequestContext``."""
    return context_of(request)
