"""The request pipeline's first step: Host → tenant, then cookie → session → user.

Runs for every matched HTTP route. An unknown host raises ``UnknownHost`` (the
platform's 404 page) unless the route is a platform route (``opt={"platform": True}``,
e.g. ``/healthz``). The result is a ``RequestContext`` in ``scope["state"]``.
"""

from __future__ import annotations

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.context import RequestContext
from core.identity import SESSION_COOKIE, load_session
from core.runtime import PortalRuntime
from core.tenancy import client_address, request_host

CTX_KEY = "portal_ctx"


class UnknownHost(NotFoundException):
    """The Host names no tenant: the platform's 404, never a default tenant."""


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class PortalContextMiddleware(ASGIMiddleware):
    """Builds the ``RequestContext`` for a request (tenant, address, user)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Resolve tenant and session before any guard or handler runs."""
        runtime: PortalRuntime = scope["litestar_app"].state.portal
        settings = runtime.settings
        headers = Headers.from_scope(scope)
        client_ip = scope["client"][0] if scope.get("client") else None
        host = request_host(headers, client_ip, settings.trusted_proxies)
        await runtime.directory.ensure_fresh()
        tenant = runtime.directory.lookup(host)
        route_handler = scope.get("route_handler")
        is_platform = bool(route_handler and route_handler.opt.get("platform"))
        if tenant is None:
            if not is_platform:
                raise UnknownHost()
            await next_app(scope, receive, send)
            return
        ctx = RequestContext(
            runtime=runtime, tenant=tenant,
            ip=client_address(headers, client_ip, settings.trusted_proxies),
            user_agent=headers.get("user-agent", "")[:500],
            request_id=headers.get("x-request-id", "")[:64] or None,
        )
        scope.setdefault("state", {})[CTX_KEY] = ctx
        await load_session(ctx, _cookie(headers, SESSION_COOKIE))
        if ctx.user is not None and ctx.user.is_tenant_admin:  # the console's read-only support view
            from core.console.support import COOKIE, enter

            await enter(ctx, scope, _cookie(headers, COOKIE))
        await next_app(scope, receive, send)
