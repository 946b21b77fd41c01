"""``/admin/billing`` in the tenant console: connect Stripe, rotate webhook secrets, test, Customer Portal.

Public routes (mounted at the host root while billing is enabled) guarded like every console
page (``core.console.guard.tenant_admin``: anonymous → login, not a tenant admin → the console's
403). Forms carry the CSRF token; a mistake re-renders the page with field errors (400) and writes
nothing; a change redirects with a notice (post/redirect/get). The logic is in ``admin_stripe``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect

from core.console.guard import tenant_admin
from core.console.routes import console_page
from core.context import Ctx, RequestContext
from core.guards import login_required
from plugins.billing import admin_stripe as service
from plugins.billing.plans import billing_config

BASE = "/admin/billing"
GUARDS = [login_required, tenant_admin]
NOTICES = {
    "connected": "Stripe connected. Run “Test connection” to check the key.",
    "secret-added": "Second webhook secret added. Events signed with either secret are accepted until you remove one.",
    "secret-removed": "Old webhook secret removed.",
    "disconnected": "Stripe disconnected. Your portal no longer calls Stripe and refuses its webhooks.",
    "portal": "Customer Portal saved and sent to Stripe.",
}


async def _page(ctx: RequestContext, *, status_code: int = 200, errors: dict[str, str] | None = None,
                notice: str | None = None, check: service.ConnectionCheck | None = None,
                portal: service.PortalSettings | None = None, form: str = "") -> Response[Any]:
    errors = errors or {}
    return await console_page(
        ctx, "billing/admin/stripe.html", status_code=status_code, errors=errors, error=errors.get(""),
        failed_form=form, notice=notice, check=check, account=await service.connection(ctx),
        webhook_url=service.webhook_url(ctx), webhook_events=service.WEBHOOK_EVENTS,
        portal=portal or service.portal_settings(ctx), portal_features=service.PORTAL_FEATURES,
        cancel_modes=service.CANCEL_MODES, headline_max=service.HEADLINE_MAX,
        max_webhook_secrets=service.MAX_WEBHOOK_SECRETS, hosts=ctx.tenant.hosts,
        provider=billing_config(ctx.tenant).provider,
    )


def _saved(what: str) -> Redirect:
    return Redirect(f"{BASE}?saved={what}")


@get(BASE, name="billing_admin_stripe", guards=GUARDS)
async def stripe_page(ctx: Ctx, saved: FromQuery[str | None] = None) -> Response[Any]:
    """The Stripe connection, the webhook to create in Stripe, and the Customer Portal."""
    return await _page(ctx, notice=NOTICES.get(saved or ""))


@post(f"{BASE}/connect", name="billing_admin_connect", guards=GUARDS)
async def connect_stripe(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Store the secret key and webhook secret (encrypted); the page never shows them back."""
    form = await request.form()
    try:
        await service.connect_account(ctx, str(form.get("secret_key") or ""), str(form.get("webhook_secret") or ""))
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="connect")
    return _saved("connected")


@post(f"{BASE}/webhook-secrets", name="billing_admin_add_secret", guards=GUARDS)
async def add_secret(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Add the new signing secret while Stripe rolls the endpoint's secret."""
    form = await request.form()
    try:
        await service.add_webhook_secret(ctx, str(form.get("new_webhook_secret") or ""))
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="rotate")
    return _saved("secret-added")


@post(f"{BASE}/webhook-secrets/remove", name="billing_admin_remove_secret", guards=GUARDS)
async def remove_secret(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Remove a secret Stripe no longer signs with."""
    form = await request.form()
    try:
        await service.remove_webhook_secret(ctx, str(form.get("fingerprint") or ""))
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="rotate")
    return _saved("secret-removed")


@post(f"{BASE}/test", name="billing_admin_test", guards=GUARDS)
async def check_stripe(ctx: Ctx) -> Response[Any]:
    """Call Stripe with the stored key and say, in plain words, whether it works."""
    return await _page(ctx, check=await service.check_connection(ctx))


@post(f"{BASE}/disconnect", name="billing_admin_disconnect", guards=GUARDS)
async def disconnect_stripe(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Forget the keys, after an explicit confirmation."""
    form = await request.form()
    if form.get("confirm") != "disconnect":
        return await _page(ctx, status_code=400, form="disconnect", errors={
            "confirm": "Tick the box to confirm: organizations billed through Stripe can't change plan or card "
                       "until you connect again."})
    try:
        await service.disconnect(ctx)
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="disconnect")
    return _saved("disconnected")


@post(f"{BASE}/portal", name="billing_admin_portal", guards=GUARDS)
async def save_portal(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Save the Customer Portal choices and push them to Stripe."""
    draft = service.parse_portal(ctx, await request.form())
    try:
        await service.configure_portal(ctx, draft)
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, portal=draft, form="portal")
    return _saved("portal")


ADMIN_PUBLIC = [stripe_page, connect_stripe, add_secret, remove_secret, check_stripe, disconnect_stripe, save_portal]
