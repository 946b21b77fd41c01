"""API keys: issue, scope, rotate and revoke keys; authenticate the ``/api/v1`` API.

The plugin's table of contents: every hook is implemented here and delegates to
``service`` (logic), ``auth`` (the request path), ``counters`` (usage buffer) and
``routes`` (pages and API). Tenant settings under ``settings["api-keys"]``: ``prefix``
(default ``pk``) and ``rate_limit_per_minute`` (per key, default 600, 0 = off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import click

from core import hookimpl
from core.context import ApiPrincipal, RequestContext
from core.contracts import DashboardCard, NavItem, Permission, PluginInfo, PluginRoutes, UsageMetric
from plugins.apikeys import auth, counters, service

log = logging.getLogger("portal.apikeys")
HERE = Path(__file__).parent
REMIND_EVERY = 3600.0


@hookimpl
def portal_plugin() -> PluginInfo:
    """Slug ``api-keys``: the URL segment and the manifest name."""
    return PluginInfo("api-keys", "API keys", "0.1.0", "Issue, scope, rotate and revoke API keys.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Developers are members, so members read and manage keys by default (a key never exceeds its creator)."""
    roles = ("owner", "admin", "member")
    return [
        Permission("api_keys.read", "See the organization's API keys", roles),
        Permission("api_keys.manage", "Create, rotate and revoke API keys", roles),
    ]


@hookimpl
def portal_routes() -> PluginRoutes:
    """Key pages under ``/o/{org}/api-keys``; ``/api/v1/api-keys/me`` and the masked key list."""
    from plugins.apikeys.routes import API_HANDLERS, PAGE_HANDLERS

    return PluginRoutes(pages=PAGE_HANDLERS, api=API_HANDLERS)


@hookimpl
def portal_nav_items(ctx: RequestContext) -> list[NavItem]:
    """"API keys" for whoever may read them."""
    return [NavItem("API keys", "/o/{org}/api-keys", "api_keys.read", order=60, icon="key")]


@hookimpl
def portal_template_dirs() -> list[Path]:
    """Pages under ``templates/apikeys/``, mail under ``templates/mail/apikeys/``."""
    return [HERE / "templates"]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """The keys and usage counters tables."""
    return ["plugins.apikeys.piccolo_app"]


@hookimpl
async def portal_authenticate_api(ctx: RequestContext, authorization: str) -> ApiPrincipal | None:
    """``Authorization: Bearer <key>``: the key's organization and scopes become the request's (see ``auth``)."""
    return await auth.authenticate(ctx, authorization)


@hookimpl
async def portal_dashboard_cards(ctx: RequestContext) -> list[DashboardCard]:
    """How many keys work right now, with a link to manage them."""
    assert ctx.organization is not None
    active = await service.count_active(ctx.tenant.id, ctx.organization.id)
    return [DashboardCard(
        title="API keys", value=str(active),
        description="active key" + ("s" * (active != 1)) if active else "No keys yet: create one to use the API.",
        link=ctx.org_url("api-keys"), link_label="Manage keys", permission="api_keys.read", order=60,
    )]


@hookimpl
async def portal_usage_metrics(ctx: RequestContext, org: Any) -> list[UsageMetric]:
    """Active keys and API calls this calendar month (limits from the plan when it sets them)."""
    limits = await ctx.runtime.plugins.first("portal_plan_limits", tenant=ctx.tenant, ctx=ctx, org=org)
    limits = limits if isinstance(limits, dict) else {}
    org_id = org.id
    return [
        UsageMetric("api_keys", "Active API keys", await service.count_active(ctx.tenant.id, org_id),
                    limits.get("api_keys")),
        UsageMetric("api_calls", "API calls", await service.calls_this_period(ctx.runtime, ctx.tenant.id, org_id),
                    limits.get("api_calls"), unit="calls"),
    ]


@hookimpl
async def portal_seed_demo(ctx: RequestContext, org: Any) -> None:
    """Two demo keys with a month of traffic (idempotent)."""
    await service.seed_demo(ctx, org)


async def _background(app: Any, state: auth.ApiKeysState) -> None:
    """Flush usage every few seconds; where the outbox worker runs, send expiry reminders hourly."""
    runtime = app.state.portal
    remind = runtime.settings.outbox_worker
    since_remind = REMIND_EVERY - 60.0
    while True:
        await asyncio.sleep(counters.FLUSH_INTERVAL)
        try:
            await state.usage.flush()
        except Exception:  # noqa: BLE001 - counts were put back; next round retries
            log.exception("API key usage flush failed; will retry")
        since_remind += counters.FLUSH_INTERVAL
        if remind and since_remind >= REMIND_EVERY:
            since_remind = 0.0
            try:
                await service.remind_expiring(runtime)
            except Exception:  # noqa: BLE001 - try again next hour
                log.exception("API key expiry reminders failed")


@hookimpl
async def portal_startup(app: Any) -> None:
    """Start the usage flusher (and the hourly reminder sweep) of this app."""
    state = auth.state_of(app.state.portal)
    if state.task is None:
        state.task = asyncio.get_running_loop().create_task(_background(app, state))


@hookimpl
async def portal_shutdown(app: Any) -> None:
    """Stop the background task and write what is still buffered."""
    state = auth.state_of(app.state.portal)
    if state.task is not None:
        state.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.task
        state.task = None
    try:
        await state.usage.flush()
    except Exception:  # noqa: BLE001 - shutting down; nothing else to do
        log.exception("final API key usage flush failed")


@hookimpl
def portal_cli(group: click.Group) -> None:
    """``portal api-keys remind``: send due expiry reminders now (cron-friendly, idempotent)."""

    @group.group("api-keys")
    def api_keys() -> None:
        """API keys."""

    @api_keys.command("remind")
    def remind() -> None:
        """Email creators of keys expiring within 7 days and record expired keys (safe to repeat)."""
        from core.app import create_app
        from core.cli import run

        app = create_app()
        reminded, expired = run(service.remind_expiring(app.state.portal))
        click.echo(f"api-keys: {reminded} reminder(s) sent, {expired} expired key(s) recorded")
