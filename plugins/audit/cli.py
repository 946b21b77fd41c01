"""``portal audit verify | head | prune``: check the chain, export its head, apply retention.

``verify`` exits 1 and names the first broken row when a chain does not check out; keep the output of
``head`` somewhere the database's operators cannot write (a ticket, a notary, another system) and pass
it back later as ``verify --tenant SLUG --head SEQ:HASH`` to detect a truncated tail.
"""

from __future__ import annotations

import sys
from typing import Any

import click


def _tenants(slug: str | None) -> Any:
    """Tenants to work on: one by slug, or all of them (id, slug, settings)."""
    from core.db import load_json
    from core.tables import Tenant

    async def load() -> list[dict[str, Any]]:
        query = Tenant.select(Tenant.id, Tenant.slug, Tenant.settings).order_by(Tenant.slug)
        if slug:
            query = query.where(Tenant.slug == slug)
        rows = await query
        for row in rows:
            row["settings"] = load_json(row["settings"]) or {}
        return rows

    return load()


def _setup() -> None:
    from core.cli import _settings
    from core.db import use_database

    use_database(_settings().database_url)


def add_commands(group: click.Group) -> None:
    """Attach the ``audit`` command group to the root CLI."""

    @group.group("audit")
    def audit() -> None:
        """The append-only, tamper-evident audit log."""

    @audit.command("verify")
    @click.option("--tenant", "slug", default=None, help="Only this tenant (slug); default: every tenant.")
    @click.option("--head", default=None, help="A head exported earlier (SEQ:HASH) to detect a truncated tail.")
    def verify_cmd(slug: str | None, head: str | None) -> None:
        """Check each tenant's hash chain and name the first broken row."""
        from core.cli import run
        from plugins.audit.chain import verify

        if head and not slug:
            raise click.UsageError("--head needs --tenant: a head belongs to one tenant's chain.")
        _setup()

        async def check() -> bool:
            tenants = await _tenants(slug)
            if slug and not tenants:
                raise click.ClickException(f"no tenant {slug!r}")
            ok = True
            for tenant in tenants:
                result = await verify(tenant["id"], head)
                click.echo(f"{tenant['slug']}: {result.describe()}")
                ok = ok and result.ok
            return ok

        if not run(check()):
            sys.exit(1)

    @audit.command("head")
    @click.option("--tenant", "slug", default=None, help="Only this tenant (slug); default: every tenant.")
    def head_cmd(slug: str | None) -> None:
        """Print each tenant's current head as SLUG SEQ:HASH (store it elsewhere; verify against it later)."""
        from core.cli import run
        from plugins.audit.service import current_head

        _setup()

        async def heads() -> None:
            tenants = await _tenants(slug)
            if slug and not tenants:
                raise click.ClickException(f"no tenant {slug!r}")
            for tenant in tenants:
                head = await current_head(tenant["id"])
                click.echo(f"{tenant['slug']} {head if head else 'empty'}")

        run(heads())

    @audit.command("prune")
    @click.option("--tenant", "slug", default=None, help="Only this tenant (slug); default: every tenant.")
    def prune_cmd(slug: str | None) -> None:
        """Remove rows older than each tenant's retention (settings audit.retention_days, default 365)."""
        from core.cli import run
        from plugins.audit.chain import prune, retention_days

        _setup()

        async def work() -> None:
            tenants = await _tenants(slug)
            if slug and not tenants:
                raise click.ClickException(f"no tenant {slug!r}")
            for tenant in tenants:
                days = retention_days(tenant["settings"])
                result = await prune(tenant["id"], days)
                if result.removed:
                    click.echo(f"{tenant['slug']}: removed {result.removed} row(s) older than {days} days "
                               f"(through seq {result.through_seq}); checkpoint #{result.checkpoint_seq}")
                else:
                    click.echo(f"{tenant['slug']}: nothing older than {days} days")

        run(work())
