"""``portal billing`` commands: connect a tenant's Stripe account, link an organization, replay, sync, renew."""

from __future__ import annotations

from typing import Any

import click


def _context(tenant_slug: str, org_slug: str | None = None) -> Any:
    """A system context of the tenant (and organization) for one-shot commands."""
    from core.app import create_app
    from core.context import CurrentOrganization, system_context
    from core.tables import Organization

    async def build() -> Any:
        app = create_app()
        runtime = app.state.portal
        tenant = await runtime.directory.by_slug(tenant_slug)
        if tenant is None:
            raise click.ClickException(f"no tenant {tenant_slug!r}")
        org = None
        if org_slug:
            row = await Organization.select().where(Organization.tenant == tenant.id,
                                                    Organization.slug == org_slug).first()
            if row is None:
                raise click.ClickException(f"no organization {org_slug!r} in {tenant_slug}")
            org = CurrentOrganization(row["id"], row["slug"], row["name"])
        return system_context(runtime, tenant, organization=org)

    return build()


def register(group: click.Group) -> None:
    """Add the ``billing`` group to the ``portal`` command line."""
    from core.cli import run

    @group.group("billing")
    def billing() -> None:
        """Billing: Stripe connection, webhook replay, backfill."""

    @billing.command("connect-stripe")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--secret-key", required=True, envvar="STRIPE_SECRET_KEY")
    @click.option("--webhook-secret", "webhook_secrets", multiple=True, help="Repeat during a secret rotation.")
    @click.option("--api-base", default="", help="Only for test servers such as localstripe.")
    @click.option("--portal-configuration", default="", help="Stripe Customer Portal configuration id (bpc_...).")
    def connect_stripe(tenant_slug: str, secret_key: str, webhook_secrets: tuple[str, ...], api_base: str,
                       portal_configuration: str) -> None:
        """Store a tenant's Stripe keys (encrypted with PORTAL_SECRET_KEY)."""
        from plugins.billing.stripe_provider import connect

        async def go() -> None:
            ctx = await _context(tenant_slug)
            await connect(ctx, secret_key, list(webhook_secrets), api_base, portal_configuration)
        run(go())
        click.echo(f"{tenant_slug}: Stripe connected ({len(webhook_secrets)} webhook secret(s))")

    @billing.command("link")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--org", "org_slug", required=True)
    @click.option("--customer", "customer_id", required=True, help="Stripe customer id (cus_...).")
    def link(tenant_slug: str, org_slug: str, customer_id: str) -> None:
        """Bill an organization through an existing Stripe customer."""
        from core.db import utcnow
        from plugins.billing.service import ensure_customer
        from plugins.billing.tables import BillingCustomer

        async def go() -> None:
            ctx = await _context(tenant_slug, org_slug)
            row = await ensure_customer(ctx, ctx.organization.id, ctx.organization.name)
            await BillingCustomer.update({BillingCustomer.stripe_customer_id: customer_id,
                                          BillingCustomer.updated_at: utcnow()}).where(BillingCustomer.id == row["id"])
        run(go())
        click.echo(f"{tenant_slug}/{org_slug}: linked to {customer_id}")

    @billing.command("replay")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--event", "event_ids", multiple=True, help="Only these event ids (default: all stored).")
    def replay_command(tenant_slug: str, event_ids: tuple[str, ...]) -> None:
        """Re-apply stored Stripe events, oldest first; newer state is never rolled back."""
        from plugins.billing.webhooks import replay

        async def go() -> dict[str, str]:
            return await replay(await _context(tenant_slug), list(event_ids) or None)
        for event_id, outcome in run(go()).items():
            click.echo(f"{event_id}: {outcome}")

    @billing.command("renew")
    @click.option("--tenant", "tenant_slug", default=None, help="Only this tenant (default: every tenant).")
    @click.option("--now", "now_text", default=None, help="Pretend it is this ISO time (UTC), e.g. for a re-run.")
    def renew_command(tenant_slug: str | None, now_text: str | None) -> None:
        """Start the next period of local subscriptions whose period ended and invoice it, then send the reminders
        due for renewal invoices still open (safe to repeat: nothing is invoiced or mailed twice)."""
        from datetime import UTC, datetime

        from core.app import create_app
        from plugins.billing.reminders import remind_open_invoices
        from plugins.billing.renewals import renew_due

        now = datetime.fromisoformat(now_text).replace(tzinfo=UTC) if now_text else None

        async def go() -> Any:
            runtime = create_app().state.portal
            await runtime.directory.refresh()
            tenant_id = None
            if tenant_slug:
                tenant = await runtime.directory.by_slug(tenant_slug)
                if tenant is None:
                    raise click.ClickException(f"no tenant {tenant_slug!r}")
                tenant_id = tenant.id
            renewed = await renew_due(runtime, now, tenant_id)
            return renewed, await remind_open_invoices(runtime, now, tenant_id)
        report, reminders = run(go())
        click.echo(f"renewals: {report.invoiced} invoiced, {report.paused} paused, {report.ended} ended, "
                   f"{report.downgraded} downgraded")
        click.echo(f"reminders: {reminders.invoices} open invoice(s) reminded, {reminders.mails} mail(s) queued")
        for line in report.skipped:
            click.echo(f"skipped {line}")

    @billing.command("sync")
    @click.option("--tenant", "tenant_slug", required=True)
    @click.option("--org", "org_slug", required=True)
    def sync_command(tenant_slug: str, org_slug: str) -> None:
        """Backfill one organization's subscription and invoices from Stripe."""
        from plugins.billing.webhooks import sync_organization

        async def go() -> dict[str, int]:
            ctx = await _context(tenant_slug, org_slug)
            return await sync_organization(ctx, ctx.organization)
        counts = run(go())
        click.echo(f"{org_slug}: {counts['subscriptions']} subscription(s), {counts['invoices']} invoice(s) synced")
