"""``/admin/billing`` in the tenant console: connect Stripe, rotate webhook secrets, test, Customer Portal,
bill organizations through Stripe and link them to Stripe customers.

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
    "provider-stripe": "Organizations linked to a Stripe customer are now billed through Stripe.",
    "provider-local": "Billing is back on your portal's ledger. Subscriptions already in Stripe keep running there "
                      "until you cancel them in Stripe.",
    "provider-unchanged": "Nothing changed: billing was already set that way.",
    "linked": "Stripe customer created and linked.",
    "already-linked": "This organization was already linked: no second customer was created.",
}


def _link_notice(linked: str | None, remaining: str | None) -> str | None:
    """The notice after "link all" (counts come back in the redirect's query)."""
    if linked is None or not linked.isdigit():
        return None
    text = f"{linked} Stripe customer(s) created and linked."
    if remaining and remaining.isdigit() and int(remaining):
        text += f" {remaining} organization(s) are still waiting: click “Link all” again."
    return text


async def _page(ctx: RequestContext, *, status_code: int = 200, errors: dict[str, str] | None = None,
                notice: str | None = None, check: service.ConnectionCheck | None = None,
                portal: service.PortalSettings | None = None, form: str = "", orgs_page: int = 1) -> Response[Any]:
    errors = errors or {}
    account = await service.connection(ctx)
    return await console_page(
        ctx, "billing/admin/stripe.html", status_code=status_code, errors=errors, error=errors.get(""),
        failed_form=form, notice=notice, check=check, account=account,
        webhook_url=service.webhook_url(ctx), webhook_events=service.WEBHOOK_EVENTS,
        portal=portal or service.portal_settings(ctx), portal_features=service.PORTAL_FEATURES,
        cancel_modes=service.CANCEL_MODES, headline_max=service.HEADLINE_MAX,
        max_webhook_secrets=service.MAX_WEBHOOK_SECRETS, hosts=ctx.tenant.hosts,
        provider=billing_config(ctx.tenant).provider, links=await service.organization_links(ctx, orgs_page),
        dashboard=service.dashboard_base(account),
    )


def _saved(what: str) -> Redirect:
    return Redirect(f"{BASE}?saved={what}")


@get(BASE, name="billing_admin_stripe", guards=GUARDS)
async def stripe_page(ctx: Ctx, saved: FromQuery[str | None] = None, linked: FromQuery[str | None] = None,
                      remaining: FromQuery[str | None] = None, orgs_page: FromQuery[int] = 1) -> Response[Any]:
    """The Stripe connection, the webhook to create in Stripe, the Customer Portal, billing through Stripe
    and the organizations' links to Stripe customers."""
    return await _page(ctx, notice=NOTICES.get(saved or "") or _link_notice(linked, remaining), orgs_page=orgs_page)


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


@post(f"{BASE}/provider", name="billing_admin_provider", guards=GUARDS)
async def switch_provider(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Bill organizations through Stripe (after a passing connection test) or back on the ledger."""
    form = await request.form()
    provider = str(form.get("provider") or "")
    try:
        changed = await service.set_provider(ctx, provider)
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="provider")
    return Redirect(f"{BASE}?saved={'provider-' + provider if changed else 'provider-unchanged'}#billing-provider")


@post(f"{BASE}/link", name="billing_admin_link", guards=GUARDS)
async def link_organizations(ctx: Ctx, request: Request[Any, Any, Any]) -> Response[Any]:
    """Create and link the Stripe customer of one organization (``organization``) or of all unlinked ones."""
    form = await request.form()
    page = str(form.get("orgs_page") or "1")
    page_query = f"&orgs_page={page}" if page.isdigit() and page != "1" else ""
    try:
        if form.get("all"):
            done = await service.link_all(ctx)
            return Redirect(f"{BASE}?linked={done.linked}&remaining={done.remaining}{page_query}#organizations")
        result = await service.link_organization(ctx, str(form.get("organization") or ""))
    except service.AdminError as exc:
        return await _page(ctx, status_code=400, errors=exc.errors, form="link",
                           orgs_page=int(page) if page.isdigit() else 1)
    return Redirect(f"{BASE}?saved={'linked' if result.linked_now else 'already-linked'}{page_query}#organizations")


ADMIN_PUBLIC = [stripe_page, switch_provider, link_organizations, connect_stripe, add_secret, remove_secret,
                check_stripe, disconnect_stripe, save_portal]
