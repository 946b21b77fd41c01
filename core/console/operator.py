"""The platform operator's commands: ``portal tenants create|suspend|resume``, ``portal domains list`` and
``portal operators create|list|disable|enable|password|2fa`` (accounts for the operator view on the platform host,
``core.console.operator_web``).

The logic lives in async functions (tested directly); the click commands only parse
arguments and print. Each change is one transaction with its event (``operator.tenant.*``,
actor "Platform operator") and bumps the tenant's version, like console changes.
A suspended tenant keeps its data; its hosts answer the platform's 404 page and
``/_tls/ask`` refuses its domains until it is resumed.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import click

from core.context import Actor, system_context
from core.db import atomic, utcnow
from core.events import Target, emit
from core.identity import normalize_email
from core.tables import Tenant, TenantDomain, User
from core.tenancy import normalize_host, tenant_record

OPERATOR = Actor("operator", None, "Platform operator")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
STATUSES = ("active", "suspended")


class OperatorError(ValueError):
    """A refused operator command; the message is printed as is."""


async def _record(tenant_id: uuid.UUID) -> Any:
    row = await Tenant.select(
        Tenant.id, Tenant.slug, Tenant.name, Tenant.theme, Tenant.status, Tenant.branding, Tenant.plugins,
        Tenant.settings, Tenant.version, Tenant.logo_type,
    ).where(Tenant.id == tenant_id).first()
    hosts = await TenantDomain.select(TenantDomain.hostname, TenantDomain.is_primary).where(
        TenantDomain.tenant == tenant_id, TenantDomain.verified.eq(True))
    return tenant_record(row, sorted((h["hostname"], h["is_primary"]) for h in hosts))


async def create_tenant(runtime: Any, *, slug: str, name: str, domains: list[str], theme: str = "default",
                        admin_email: str | None = None) -> tuple[uuid.UUID, str | None]:
    """Create an active tenant with its platform domains (verified; the first is primary) and, optionally,
    a tenant admin account. Returns the tenant id and the admin's one-time password."""
    if not SLUG.match(slug):
        raise OperatorError("slug: use lower-case letters, digits and dashes")
    if not name.strip():
        raise OperatorError("name: give the tenant a name")
    if theme not in runtime.themes.themes:
        raise OperatorError(f"theme: no theme {theme!r} (have: {', '.join(sorted(runtime.themes.themes))})")
    hosts = []
    for raw in domains:
        host = normalize_host(raw)
        if not host or ":" in host:
            raise OperatorError(f"domain: {raw!r} is not a hostname")
        hosts.append(host)
    if not hosts:
        raise OperatorError("domain: give at least one hostname (--domain)")
    email = normalize_email(admin_email) if admin_email else None
    if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise OperatorError(f"admin email: {admin_email!r} is not an email address")
    password = secrets.token_urlsafe(12) if email else None
    tenant_id = uuid.uuid4()
    now = utcnow()
    async with atomic():
        if await Tenant.exists().where(Tenant.slug == slug):
            raise OperatorError(f"slug: a tenant {slug!r} already exists")
        taken = await TenantDomain.select(TenantDomain.hostname).where(TenantDomain.hostname.is_in(hosts))
        if taken:
            raise OperatorError(f"domain: {taken[0]['hostname']} already belongs to a tenant")
        await Tenant.insert(Tenant(id=tenant_id, slug=slug, name=name.strip(), theme=theme, status="active",
                                   branding={}, plugins=None, settings={}, version=1, created_at=now,
                                   updated_at=now))
        for index, host in enumerate(dict.fromkeys(hosts)):
            await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant_id, hostname=host,
                                                   is_primary=index == 0, verified=True, created_at=now))
        if email and password:
            await User.insert(User(id=uuid.uuid4(), tenant=tenant_id, email=email, name="",
                                   password_hash=runtime.passwords.hash(password), is_tenant_admin=True,
                                   created_at=now))
        ctx = system_context(runtime, await _record(tenant_id), actor=OPERATOR)
        await emit(ctx, "operator.tenant.created", target=Target("tenant", str(tenant_id), name), before=None,
                   after={"slug": slug, "name": name, "domains": hosts, "theme": theme, "admin": email})
    runtime.directory.invalidate()
    return tenant_id, password


async def set_status(runtime: Any, slug: str, status: str, *, actor: Actor = OPERATOR) -> bool:
    """Suspend or resume a tenant; returns False when it already had that status.

    ``actor`` is the signed-in operator when the operator view does it (the CLI's is "Platform operator").
    """
    if status not in STATUSES:
        raise OperatorError(f"status: one of {', '.join(STATUSES)}")
    async with atomic():
        row = await Tenant.select(Tenant.id, Tenant.name, Tenant.status).where(Tenant.slug == slug).first()
        if row is None:
            raise OperatorError(f"no tenant {slug!r}")
        if row["status"] == status:
            return False
        await Tenant.update({Tenant.status: status, Tenant.version: Tenant.version + 1,
                             Tenant.updated_at: utcnow()}).where(Tenant.id == row["id"])
        ctx = system_context(runtime, await _record(row["id"]), actor=actor)
        verb = "suspended" if status == "suspended" else "resumed"
        await emit(ctx, f"operator.tenant.{verb}", target=Target("tenant", str(row["id"]), row["name"]),
                   before={"status": row["status"]}, after={"status": status})
    runtime.directory.invalidate()
    return True


async def domain_rows(slug: str | None = None) -> list[dict[str, Any]]:
    """Every domain with its tenant and state, for ``portal domains list``."""
    query = TenantDomain.select(
        TenantDomain.hostname, TenantDomain.is_primary, TenantDomain.verified, TenantDomain.created_at,
        TenantDomain.tenant.slug.as_alias("tenant_slug"), TenantDomain.tenant.status.as_alias("tenant_status"),
    )
    if slug:
        query = query.where(TenantDomain.tenant.slug == slug)
    rows = await query.order_by(TenantDomain.hostname)
    for row in rows:
        live = row["verified"] and row["tenant_status"] == "active"
        row["state"] = "live" if live else ("pending DNS" if not row["verified"] else f"tenant {row['tenant_status']}")
        row["tls"] = "yes" if live else "no"
    return rows


@dataclass(frozen=True)
class OperatorCredentials:
    """What the shell prints once: the generated password and the authenticator seed (either may be None)."""

    email: str
    password: str | None
    totp_secret: str | None

    def authenticator_uri(self) -> str | None:
        """The ``otpauth://`` address to add to an authenticator app."""
        from core.totp import provisioning_uri

        return provisioning_uri(self.totp_secret, self.email, "Portal operator") if self.totp_secret else None


async def create_operator(runtime: Any, email: str, name: str = "") -> OperatorCredentials:
    """Create a platform operator account with a generated password and authenticator seed (both shown once)."""
    from core.console.tables import PlatformOperator
    from core.totp import new_secret

    address = normalize_email(email)
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", address):
        raise OperatorError(f"email: {email!r} is not an email address")
    password, seed = secrets.token_urlsafe(15), new_secret()
    async with atomic():
        if await PlatformOperator.exists().where(PlatformOperator.email == address):
            raise OperatorError(f"an operator {address} already exists (portal operators password to reset)")
        await PlatformOperator.insert(PlatformOperator(id=uuid.uuid4(), email=address, name=name.strip()[:200],
                                                       password_hash=runtime.passwords.hash(password),
                                                       totp_secret=runtime.secrets.encrypt(seed),
                                                       created_at=utcnow()))
    return OperatorCredentials(address, password, seed)


async def update_operator(runtime: Any, email: str, *, disabled: bool | None = None, new_password: bool = False,
                          new_totp: bool = False) -> OperatorCredentials:
    """Disable/enable an operator, or issue a new password or authenticator seed (returned); a new secret or
    disabling ends their sessions."""
    from core.console.tables import OperatorSession, PlatformOperator
    from core.totp import new_secret

    address = normalize_email(email)
    row = await PlatformOperator.select(PlatformOperator.id).where(PlatformOperator.email == address).first()
    if row is None:
        raise OperatorError(f"no operator {address}")
    values: dict[Any, Any] = {}
    password = secrets.token_urlsafe(15) if new_password else None
    seed = new_secret() if new_totp else None
    if password:
        values[PlatformOperator.password_hash] = runtime.passwords.hash(password)
    if seed:
        values[PlatformOperator.totp_secret] = runtime.secrets.encrypt(seed)
        values[PlatformOperator.totp_last_step] = 0
    if disabled is not None:
        values[PlatformOperator.disabled] = disabled
    async with atomic():
        if values:
            await PlatformOperator.update(values).where(PlatformOperator.id == row["id"])
        if password or seed or disabled:
            await OperatorSession.update({OperatorSession.revoked_at: utcnow()}).where(
                OperatorSession.operator == row["id"], OperatorSession.revoked_at.is_null())
    return OperatorCredentials(address, password, seed)


async def operator_rows() -> list[dict[str, Any]]:
    """Every operator account, for ``portal operators list``."""
    from core.console.tables import PlatformOperator

    return await PlatformOperator.select(PlatformOperator.email, PlatformOperator.name, PlatformOperator.disabled,
                                         PlatformOperator.last_login_at).order_by(PlatformOperator.email)


def register(cli: click.Group, tenants: click.Group) -> None:
    """Add the operator commands to the ``portal`` CLI (called once by ``core.cli``)."""

    def _runtime() -> Any:
        from core.app import create_app
        from core.cli import _settings

        return create_app(_settings().with_overrides(outbox_worker=False)).state.portal

    def _fail(exc: OperatorError) -> None:
        click.echo(f"portal: {exc}", err=True)
        raise SystemExit(1)

    @tenants.command("create")
    @click.argument("slug")
    @click.option("--name", required=True, help="What the portal is called until its admin brands it.")
    @click.option("--domain", "domains", multiple=True, required=True,
                  help="A platform hostname (repeat; the first is primary).")
    @click.option("--theme", default="default", show_default=True)
    @click.option("--admin-email", default=None, help="Create a tenant admin account; its password is printed once.")
    def tenants_create(slug: str, name: str, domains: tuple[str, ...], theme: str, admin_email: str | None) -> None:
        """Create a tenant (a reseller) with its hostnames and, optionally, its first tenant admin."""
        from core.cli import run

        runtime = _runtime()
        try:
            tenant_id, password = run(create_tenant(runtime, slug=slug, name=name, domains=list(domains),
                                                    theme=theme, admin_email=admin_email))
        except OperatorError as exc:
            _fail(exc)
            return
        click.echo(f"created tenant {slug} ({tenant_id}) on {', '.join(domains)}")
        if password:
            click.echo(f"tenant admin {admin_email} password (shown once): {password}")
            click.echo(f"console: http://{domains[0]}/admin")

    def _set(slug: str, status: str) -> None:
        from core.cli import run

        try:
            changed = run(set_status(_runtime(), slug, status))
        except OperatorError as exc:
            _fail(exc)
            return
        click.echo(f"{slug}: {status}" if changed else f"{slug}: already {status}")

    @tenants.command("suspend")
    @click.argument("slug")
    def tenants_suspend(slug: str) -> None:
        """Suspend a tenant: its hosts stop serving and get no certificates; data is kept."""
        _set(slug, "suspended")

    @tenants.command("resume")
    @click.argument("slug")
    def tenants_resume(slug: str) -> None:
        """Resume a suspended tenant."""
        _set(slug, "active")

    @cli.group()
    def operators() -> None:
        """Accounts of the operator view on the platform host (PORTAL_PLATFORM_HOST/operator)."""

    def _print(creds: OperatorCredentials | None) -> None:
        if creds is None:
            return
        if creds.password:
            click.echo(f"operator {creds.email} password (shown once): {creds.password}")
        if creds.totp_secret:
            from core.totp import group_secret

            click.echo(f"authenticator key (shown once): {group_secret(creds.totp_secret)}")
            click.echo(f"  or add this to the authenticator app: {creds.authenticator_uri()}")

    @operators.command("create")
    @click.argument("email")
    @click.option("--name", default="", help="Shown in the audit log next to the email.")
    def operators_create(email: str, name: str) -> None:
        """Create an operator account; its password and authenticator key are printed once."""
        from core.cli import run

        runtime = _runtime()
        try:
            creds = run(create_operator(runtime, email, name))
        except OperatorError as exc:
            _fail(exc)
            return
        _print(creds)
        host = runtime.settings.extra.get("platform_host")
        click.echo(f"sign in at: https://{host}/operator/login" if host else
                   "set PORTAL_PLATFORM_HOST to the platform's hostname to open the operator view")

    def _update(email: str, **changes: Any) -> OperatorCredentials | None:
        from core.cli import run

        try:
            return run(update_operator(_runtime(), email, **changes))
        except OperatorError as exc:
            _fail(exc)
            return None

    @operators.command("disable")
    @click.argument("email")
    def operators_disable(email: str) -> None:
        """Disable an operator account and end its sessions."""
        _update(email, disabled=True)
        click.echo(f"{normalize_email(email)}: disabled")

    @operators.command("enable")
    @click.argument("email")
    def operators_enable(email: str) -> None:
        """Enable a disabled operator account again."""
        _update(email, disabled=False)
        click.echo(f"{normalize_email(email)}: enabled")

    @operators.command("password")
    @click.argument("email")
    def operators_password(email: str) -> None:
        """Give an operator a new generated password (printed once) and end their sessions."""
        _print(_update(email, new_password=True))

    @operators.command("2fa")
    @click.argument("email")
    def operators_2fa(email: str) -> None:
        """Give an operator a new authenticator key (lost phone); the old one stops working, sessions end."""
        _print(_update(email, new_totp=True))

    @operators.command("list")
    def operators_list() -> None:
        """Operator accounts, whether they are enabled, their last sign-in."""
        from core.cli import _settings, run
        from core.db import use_database

        use_database(_settings().database_url)
        rows = run(operator_rows())
        if not rows:
            click.echo("no operators (portal operators create EMAIL)")
        for row in rows:
            state = "disabled" if row["disabled"] else "enabled"
            last = row["last_login_at"].isoformat(timespec="minutes") if row["last_login_at"] else "never"
            click.echo(f"{row['email']:<40} {row['name'][:24]:<24} {state:<9} last sign-in {last}")

    @cli.group()
    def domains() -> None:
        """Custom and platform domains of every tenant."""

    @domains.command("list")
    @click.option("--tenant", "slug", default=None, help="Only this tenant's domains.")
    def domains_list(slug: str | None) -> None:
        """Hostnames, their tenant, whether they are live and get TLS certificates."""
        from core.cli import _settings, run
        from core.db import use_database

        use_database(_settings().database_url)
        rows = run(domain_rows(slug))
        if not rows:
            click.echo("no domains")
        for row in rows:
            primary = " (primary)" if row["is_primary"] else ""
            click.echo(f"{row['hostname'] + primary:<44} {row['tenant_slug']:<16} {row['state']:<18} tls={row['tls']}")
