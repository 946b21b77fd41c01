"""Themed error pages (403, 404, 500) and JSON errors for the API.

A person gets a page in the tenant's brand that says what happened and what to
do next; an API client gets ``{"error": ..., "status": ...}``; nobody gets a
stack trace. A host that names no tenant gets the platform's own 404 page.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from core.guards import LoginRequired
from core.middleware import CTX_KEY
from core.rendering import csrf_token
from core.tenancy import client_address, request_host
from core.themes import CORE_TEMPLATES
from core.two_factor_policy import TwoFactorRequired

log = logging.getLogger("portal.errors")

MESSAGES = {
    400: ("This request could not be understood", "Check what you entered and try again."),
    401: ("Please sign in", "You need to sign in to see this page."),
    403: ("You don't have access to this", "Your role does not allow this. Ask an owner or admin of your "
          "organization if you need it."),
    404: ("Page not found", "The page you asked for does not exist, or you don't have access to it."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too large", "What you sent is too large."),
    429: ("Too many attempts", "Please wait a moment and try again."),
    500: ("Something went wrong", "We could not complete your request. It has been logged; please try again."),
}
CSRF_FAILED = "CSRF token verification failed"


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def _tenant_context(request: Request[Any, Any, Any]) -> Any:
    """The request's context, or a bare one if the router failed before the middleware ran."""
    ctx = request.scope.get("state", {}).get(CTX_KEY)
    if ctx is not None:
        return ctx
    runtime = request.app.state.portal
    client = request.client.host if request.client else None
    tenant = runtime.directory.lookup(request_host(request.headers, client, runtime.settings.trusted_proxies))
    if tenant is None:
        return None
    from core.context import RequestContext

    return RequestContext(runtime=runtime, tenant=tenant, request=request,
                          ip=client_address(request.headers, client, runtime.settings.trusted_proxies))


def _platform_page(status: int, title: str, message: str) -> str:
    template = (CORE_TEMPLATES / "platform_error.html").read_text()
    import jinja2

    return jinja2.Environment(autoescape=True).from_string(template).render(
        status=status, title=title, message=message
    )


def error_response(request: Request[Any, Any, Any], status: int, detail: str | None = None,
                   headers: dict[str, str] | None = None) -> Response[Any]:
    """The error page (or JSON) for ``status`` on this request's tenant."""
    title, message = MESSAGES.get(status, MESSAGES[500 if status >= 500 else 400])
    if detail and status < 500 and detail not in {title, "Not Found", "Forbidden"}:
        message = detail
    if detail == CSRF_FAILED:
        message = "Your form expired or came from another site. Reload the page and try again."
    if _is_api(request):
        return Response({"error": message, "status": status}, status_code=status, headers=headers,
                        media_type=MediaType.JSON)
    ctx = _tenant_context(request)
    if ctx is None:
        html = _platform_page(status, title, message)
    else:
        if ctx.request is None:
            ctx.request = request
        env = ctx.runtime.themes.environment(ctx.theme)
        css_hash, _ = ctx.runtime.themes.tenant_css(ctx.tenant)
        html = env.get_template("error.html").render(
            ctx=ctx, tenant=ctx.tenant, brand=ctx.tenant.branding, product_name=ctx.tenant.product_name,
            theme=ctx.theme, user=ctx.user, organization=None, organizations=[], nav_items=[],
            can=ctx.can, csrf_token=csrf_token(ctx), stylesheet_url=f"/assets/brand/{css_hash}.css",
            logo_url=f"/assets/logo?v={ctx.tenant.version}", unread_notifications=0,
            request_path=request.url.path, status=status, title=title, message=message,
            dev_mail=False, debug=False,
        )
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Every ``HTTPException``: login redirect, themed page or JSON."""
    if isinstance(exc, LoginRequired) and not _is_api(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='/')}")
    if isinstance(exc, TwoFactorRequired) and not _is_api(request):
        return Redirect(exc.redirect_to)
    if isinstance(exc, ValidationException) and not _is_api(request):
        return error_response(request, 400, "Some of what you sent is missing or malformed.")
    headers = dict(exc.headers or {})
    detail = exc.detail if not isinstance(exc, NotFoundException) else None
    return error_response(request, exc.status_code, detail, headers=headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Anything unexpected: logged with the traceback, shown as a calm 500 page."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR)
