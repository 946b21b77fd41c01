"""The ``portal`` command line.

``portal serve``, ``portal migrate``, ``portal tenants apply DIR [--seed-demo]``,
``portal plugins list``, ``portal hooks docs``, ``portal outbox work``; plugins add
theirs through ``portal_cli``. A bad setting prints one line and exits 2.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from core.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"portal: configuration error: {exc}", err=True)
        sys.exit(2)


def run(coro: Any) -> Any:
    """Run a coroutine with the database connected (CLI commands are one-shot)."""
    from core.db import connect, disconnect

    async def wrapped() -> Any:
        await connect()
        try:
            return await coro
        finally:
            await disconnect()

    return asyncio.run(wrapped())


@click.group()
def cli() -> None:
    """Portal: a pluggable, multi-tenant customer portal."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, type=int, help="Defaults to $PORT or 8000.")
@click.option("--workers", default=1, show_default=True)
def serve(host: str, port: int | None, workers: int) -> None:
    """Serve the portal with uvicorn."""
    import os

    import uvicorn

    _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    port = port or int(os.environ.get("PORT", "8000"))
    uvicorn.run("core.app:asgi_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=False, log_level="info")


@cli.command()
def migrate() -> None:
    """Apply the migrations of the core and every plugin."""
    from core.db import use_database
    from core.migrate import migrate_all

    settings = _settings()
    use_database(settings.database_url)
    for line in run(migrate_all()):
        click.echo(line)
    click.echo("migrations: up to date")


@cli.group()
def tenants() -> None:
    """Tenant manifests."""


@tenants.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--seed-demo", is_flag=True, help="Fill demo organizations through portal_seed_demo.")
@click.option("--reset-console", is_flag=True,
              help="Also undo what tenant admins changed in the console (kept otherwise).")
def tenants_apply(path: Path, seed_demo: bool, reset_console: bool) -> None:
    """Create or update the tenants of PATH (a .toml file or a folder of them); console changes are kept."""
    from core.seeding import apply_path

    settings = _settings()
    try:
        reports = run(apply_path(settings, path, seed_demo=seed_demo, reset_console=reset_console))
    except ValueError as exc:
        click.echo(f"portal: {exc}", err=True)
        sys.exit(1)
    for report in reports:
        for change in report.changes:
            click.echo(f"{report.tenant}: {change}")
        if not report.changes:
            click.echo(f"{report.tenant}: unchanged")
        if report.kept:
            click.echo(f"{report.tenant}: kept console changes to {', '.join(report.kept)} "
                       "(--reset-console to apply the manifest's)")


@tenants.command("list")
def tenants_list() -> None:
    """Tenants and their domains."""
    from core.db import use_database
    from core.tables import Tenant, TenantDomain

    settings = _settings()
    use_database(settings.database_url)

    async def listing() -> None:
        for tenant in await Tenant.select().order_by(Tenant.slug):
            hosts = await TenantDomain.select(TenantDomain.hostname, TenantDomain.is_primary).where(
                TenantDomain.tenant == tenant["id"])
            names = ", ".join(h["hostname"] + (" (primary)" if h["is_primary"] else "") for h in hosts)
            click.echo(f"{tenant['slug']:<16} {tenant['name']:<24} {tenant['theme']:<10} {names}")

    run(listing())


@cli.group()
def plugins() -> None:
    """Plugins."""


@plugins.command("list")
def plugins_list() -> None:
    """Every loaded plugin: slug, version, where it came from, what it is."""
    from core.app import build_plugin_host

    host = build_plugin_host(_settings())
    for slug, loaded in host.plugins.items():
        info = loaded.info
        click.echo(f"{slug:<12} {info.version:<8} {loaded.source:<10} {info.label} — {info.description}")


@cli.group()
def hooks() -> None:
    """The plugin contract."""


@hooks.command("docs")
def hooks_docs() -> None:
    """Print the hooks reference (Markdown) from core/hookspecs.py."""
    from core.hookdocs import hooks_markdown

    click.echo(hooks_markdown())


@cli.group()
def outbox() -> None:
    """The transactional outbox."""


@outbox.command("work")
@click.option("--once", is_flag=True, help="Deliver what is due now and exit.")
def outbox_work(once: bool) -> None:
    """Deliver outbox messages (a separate worker process; the app runs one too by default)."""
    from core.app import create_app
    from core.outbox import OutboxWorker

    app = create_app(_settings())
    runtime = app.state.portal
    worker = OutboxWorker(runtime.outbox_handlers, app, runtime.settings.outbox_poll_interval)

    async def work() -> None:
        if once:
            click.echo(f"delivered {await worker.run_once()} message(s)")
            return
        worker.start()
        await asyncio.Event().wait()

    run(work())


from core.console.operator import register as register_operator_commands  # noqa: E402

register_operator_commands(cli, tenants)  # tenants create|suspend|resume, domains list


def build_cli() -> click.Group:
    """The root group with every plugin's commands added."""
    try:
        from core.app import build_plugin_host

        host = build_plugin_host(load_settings())
        host.call_build("portal_cli", group=cli)
    except SettingsError:
        pass  # reported by the command itself
    return cli


def main() -> None:
    """Console script entry point."""
    build_cli()(prog_name="portal")
