"""``portal usage ...``: maintenance commands an operator runs by hand or from cron."""

from __future__ import annotations

import click


@click.group("usage")
def usage_group() -> None:
    """Usage rollups and alerts."""


async def _each_org(tenant_slug: str | None, action: str) -> None:
    from core.app import create_app
    from core.context import CurrentOrganization, system_context
    from core.settings import load_settings
    from core.tables import Organization
    from plugins.usage.alerts import check_alerts
    from plugins.usage.config import config_of
    from plugins.usage.service import rebuild_rollups

    app = create_app(load_settings().with_overrides(outbox_worker=False))
    runtime = app.state.portal
    await runtime.directory.refresh()
    for tenant in list(runtime.directory._by_id.values()):  # the snapshot of active tenants
        if tenant_slug and tenant.slug != tenant_slug:
            continue
        if not runtime.plugins.is_enabled("usage", tenant):
            continue
        for org in await Organization.select().where(Organization.tenant == tenant.id):
            current = CurrentOrganization(org["id"], org["slug"], org["name"])
            ctx = system_context(runtime, tenant, organization=current)
            if action == "rebuild":
                events = await rebuild_rollups(tenant.id, org["id"], config_of(ctx).timezone)
                click.echo(f"{tenant.slug}/{org['slug']}: rebuilt rollups from {events} events")
            else:
                fired = await check_alerts(ctx, current)
                for alert in fired:
                    click.echo(f"{tenant.slug}/{org['slug']}: {alert.label} crossed {alert.threshold}%")


@usage_group.command("rebuild-rollups")
@click.option("--tenant", "tenant_slug", default=None, help="Only this tenant (slug).")
def rebuild(tenant_slug: str | None) -> None:
    """Recompute hourly and daily rollups from raw events (run after changing a tenant's usage time zone)."""
    from core.cli import run

    run(_each_org(tenant_slug, "rebuild"))


@usage_group.command("check-alerts")
@click.option("--tenant", "tenant_slug", default=None, help="Only this tenant (slug).")
def check(tenant_slug: str | None) -> None:
    """Fire alerts for every metric, including those of other plugins (seats, keys); safe to run often."""
    from core.cli import run

    run(_each_org(tenant_slug, "check"))


@usage_group.command("report-meters")
@click.option("--tenant", "tenant_slug", default=None, help="Only this tenant (slug).")
def report_meters_command(tenant_slug: str | None) -> None:
    """Queue closed hourly usage for the payment provider's meters (the app also does it every 5 minutes)."""
    from core.cli import run

    async def go() -> None:
        from core.app import create_app
        from core.settings import load_settings
        from plugins.usage.meters import report_meters

        app = create_app(load_settings().with_overrides(outbox_worker=False))
        queued = await report_meters(app.state.portal, tenant_slug=tenant_slug)
        click.echo(f"queued {queued} meter events; the outbox worker delivers them")

    run(go())
