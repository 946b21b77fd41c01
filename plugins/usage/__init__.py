"""Usage: metered ingest API, rollups, dashboard with limits, charts, CSV export, forecast and alerts.

Hook implementations only; see ``service`` (write path), ``queries`` (read path),
``dashboard``, ``alerts``, ``export``, ``meters`` (metered usage to the payment provider
through the outbox; billing makes the provider call) and ``routes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from core import hookimpl
from core.contracts import DashboardCard, NavItem, Permission, PluginInfo, PluginRoutes, UsageMetric

HERE = Path(__file__).parent


@hookimpl
def portal_plugin() -> PluginInfo:
    """The usage section: slug ``usage`` (URLs ``/o/{org}/usage`` and ``/api/v1/usage``)."""
    return PluginInfo("usage", "Usage", "1.0.0", "What an organization consumed against its plan, and an ingest API.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Everyone may look; people who run the systems may report; owners and admins pick alert levels."""
    return [
        Permission("usage.read", "See usage and export it", ("owner", "admin", "billing", "member", "viewer")),
        Permission("usage.write", "Report usage through the API", ("owner", "admin", "member")),
        Permission("usage.manage", "Choose usage alert levels", ("owner", "admin")),
    ]


@hookimpl
def portal_routes() -> PluginRoutes:
    """Dashboard, CSV export and alert settings under ``/o/{org}/usage``; ingest and reads under ``/api/v1/usage``."""
    from plugins.usage.routes import API_HANDLERS, PAGE_HANDLERS

    return PluginRoutes(pages=list(PAGE_HANDLERS), api=list(API_HANDLERS))


@hookimpl
def portal_nav_items(ctx: Any) -> list[NavItem]:
    """The "Usage" entry, for whoever may read usage."""
    return [NavItem("Usage", "/o/{org}/usage", "usage.read", order=40, icon="chart")]


@hookimpl
def portal_template_dirs() -> list[Path]:
    """``usage/*.html`` pages and the ``mail/usage_alert.*`` email."""
    return [HERE / "templates"]


@hookimpl
def portal_static_dirs() -> list[Path]:
    """The vendored Chart.js, the chart script and the page's stylesheet."""
    return [HERE / "static"]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """Raw events, rollups and alert tables."""
    return ["plugins.usage.piccolo_app"]


@hookimpl
async def portal_usage_metrics(ctx: Any, org: Any) -> list[UsageMetric]:
    """The ingested metrics' totals for the current period, reported like any other plugin's metrics."""
    from plugins.usage.metrics import ingested_metrics

    return await ingested_metrics(ctx, org)


@hookimpl
async def portal_dashboard_cards(ctx: Any) -> list[DashboardCard]:
    """On the overview: the metric closest to its limit (or a pointer to the usage page)."""
    from plugins.usage.metrics import all_metrics

    if not ctx.can("usage.read"):
        return []
    limited = [v.metric for v in await all_metrics(ctx, ctx.organization)
               if v.metric.limit is not None and v.metric.limit > 0]
    link = ctx.org_url("usage")
    if not limited:
        return [DashboardCard("Usage", value="—", description="No plan limits to watch.", link=link,
                              link_label="See usage", order=40)]
    top = max(limited, key=lambda m: m.used / m.limit)
    percent = top.used / top.limit * 100
    return [DashboardCard("Usage", value=f"{percent:.0f}%", description=f"{top.label}: {top.used:,.0f} of "
                          f"{top.limit:,.0f} this period", link=link, link_label="See usage", order=40)]


@hookimpl
async def portal_seed_demo(ctx: Any, org: Any) -> None:
    """Twelve months of realistic usage for each configured metric (idempotent)."""
    from plugins.usage.seed import seed_usage

    await seed_usage(ctx, org)


@hookimpl
def portal_outbox_handlers() -> dict[str, Any]:
    """``usage.meter_events``: one organization's closed hourly buckets, handed to ``portal_report_metered_usage``."""
    from plugins.usage.meters import KIND, deliver_meter_events

    return {KIND: deliver_meter_events}


@hookimpl
async def portal_startup(app: Any) -> None:
    """Where the app delivers the outbox, it also queues metered usage every five minutes."""
    import asyncio

    from plugins.usage.meters import reporter_loop

    runtime = app.state.portal
    if runtime.settings.outbox_worker and runtime.state.get("usage.meters") is None:
        runtime.state["usage.meters"] = asyncio.get_running_loop().create_task(reporter_loop(app))


@hookimpl
async def portal_shutdown(app: Any) -> None:
    """Stop the meter reporter and the ingest writer (closing its SQLite connection)."""
    from plugins.usage.meters import stop
    from plugins.usage.writer import STATE_KEY

    await stop(app.state.portal.state.pop("usage.meters", None))
    writer = app.state.portal.state.pop(STATE_KEY, None)
    if writer is not None:
        await writer.stop()


@hookimpl
def portal_cli(group: click.Group) -> None:
    """``portal usage rebuild-rollups`` (after a time-zone change), ``check-alerts`` and ``report-meters`` (cron)."""
    from plugins.usage.cli import usage_group

    group.add_command(usage_group)
