"""Billing plugin (slug ``billing``): plan, invoices with branded PDFs, plan changes, Stripe in sync.

This module only lists the hooks; the work is in ``service`` (logic), ``providers``
(local ledger / Stripe), ``pdf``, ``routes``, ``webhooks`` and ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import hookimpl
from core.context import RequestContext
from core.contracts import DashboardCard, NavItem, Permission, PluginInfo, PluginRoutes
from plugins.billing.access import MANAGE_ROLES, READ_ROLES


@hookimpl
def portal_plugin() -> PluginInfo:
    """Who the plugin is."""
    return PluginInfo("billing", "Billing", "1.0.0", "Plan, invoices, payment method and billing details.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Reading billing is for finance-minded roles; changing it for owners and billing members."""
    return [Permission("billing.read", "See plan and invoices", READ_ROLES),
            Permission("billing.manage", "Change plan, cancel, update payment method and billing details",
                       MANAGE_ROLES)]


@hookimpl
def portal_routes() -> PluginRoutes:
    """Pages under ``/o/{org}/billing``; the admin preview and the Stripe webhook at the host root."""
    from plugins.billing.admin import ADMIN_PUBLIC
    from plugins.billing.routes import PAGES, PUBLIC
    from plugins.billing.webhooks import WEBHOOK_HANDLERS

    return PluginRoutes(pages=PAGES, public=[*PUBLIC, *WEBHOOK_HANDLERS, *ADMIN_PUBLIC])


@hookimpl
def portal_nav_items(ctx: RequestContext) -> list[NavItem]:
    """"Billing" for those who may read it."""
    return [NavItem("Billing", "/o/{org}/billing", "billing.read", order=60, icon="credit-card")]


@hookimpl
def portal_admin_nav_items(ctx: RequestContext) -> list[NavItem]:
    """"Stripe" in the reseller console: connect the tenant's account, webhook, Customer Portal."""
    return [NavItem("Stripe", "/admin/billing", order=45)]


@hookimpl
def portal_template_dirs() -> list[Path]:
    """Pages, the invoice PDF template and the payment-failed mail."""
    return [Path(__file__).parent / "templates"]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """Tables and migrations."""
    return ["plugins.billing.piccolo_app"]


@hookimpl
async def portal_dashboard_cards(ctx: RequestContext) -> list[DashboardCard]:
    """The plan and its state on the overview, so a past-due payment is seen where people land."""
    from plugins.billing.plans import billing_config, money
    from plugins.billing.service import subscription_view

    if ctx.organization is None or not ctx.can("billing.read"):
        return []
    sub = await subscription_view(ctx, ctx.organization.id)
    if sub is None or sub.plan is None:
        return []
    config = billing_config(ctx.tenant)
    status = {"past_due": "Payment past due", "cancelling": "Cancelling", "cancelled": "Cancelled",
              "paused": "Paused", "trialing": "Trialing"}.get(
        sub.display_status, "Active")
    return [DashboardCard(title="Plan", value=sub.plan.name, link=ctx.org_url("billing"), link_label="Billing",
                          description=f"{status} · {money(sub.plan.price, sub.plan.currency, config.locale)} / "
                                      f"{sub.plan.interval}", permission="billing.read", order=20)]


@hookimpl
async def portal_plan_limits(ctx: RequestContext, org: Any) -> dict[str, int] | None:
    """The limits of the organization's current plan (team reads seats, usage API calls, ...)."""
    from plugins.billing.service import plan_limits

    return await plan_limits(ctx, org.id)


@hookimpl
async def portal_billing_summaries(ctx: RequestContext, orgs: list[Any]) -> Any:
    """What the organizations pay, from the local copy (usage's projected bill, the console's revenue)."""
    from plugins.billing.service import billing_summaries

    return await billing_summaries(ctx, orgs)


@hookimpl
def portal_plan_change_allowed(ctx: RequestContext, org: Any, current_plan: Any, new_plan: Any) -> str | None:
    """The tenant's ``allowed_plan_changes``: a reseller may restrict which plan leads to which."""
    from plugins.billing.plans import billing_config
    from plugins.billing.service import allowed_by_tenant

    if allowed_by_tenant(billing_config(ctx.tenant), current_plan.id if current_plan else None, new_plan.id):
        return None
    return "Not available for your organization."


@hookimpl(tryfirst=True)
async def portal_seed_demo(ctx: RequestContext, org: Any) -> None:
    """A year of invoices and a subscription per demo organization (idempotent).

    Runs before the other sections' seeds: they size their demo data to the plan it picks.
    """
    from plugins.billing.seed import seed_organization

    await seed_organization(ctx, org)


@hookimpl
def portal_cli(group: Any) -> None:
    """``portal billing ...``: connect Stripe, replay stored webhook events, sync an organization."""
    from plugins.billing.cli import register

    register(group)


@hookimpl
async def portal_startup(app: Any) -> None:
    """Renew local subscriptions whose period ended and remind payers of renewal invoices left open (hourly, where
    the outbox worker runs)."""
    from plugins.billing import renewals

    renewals.start(app.state.portal)


@hookimpl
async def portal_shutdown(app: Any) -> None:
    """Stop the renewal loop and the PDF worker processes."""
    from plugins.billing import renewals
    from plugins.billing.pdf import shutdown_pool

    await renewals.stop(app.state.portal)
    shutdown_pool(app.state.portal.state)
