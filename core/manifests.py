"""Declarative tenant manifests (``tenants/*.toml``) and ``portal tenants apply``.

A manifest declares a tenant: slug, name, domains (the first is primary), theme,
branding, enabled plugins, and demo organizations and users. Applying is
idempotent: it creates what is missing, updates what differs, reports each
change, and running it twice reports nothing. A malformed file is rejected with
the file, the key and the reason, before anything of it is written; each file is
applied in one transaction.

The manifest seeds a tenant; the reseller then runs it from the console. What the
console changed is listed in ``Tenant.console_owned`` (``theme``, ``branding``,
``logo``, ``plugins``, ``domains.primary``, ``settings.<section>.<key>``; a whole
``settings.<section>`` in records written before keys were tracked) and domains added
there carry ``source = "console"``: applying keeps those and reports them as kept,
so re-applying the operator's files never undoes a reseller's work. ``reset_console``
(``portal tenants apply --reset-console``) hands everything back to the manifest.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from core.contracts import ROLES
from core.db import atomic, load_json, utcnow
from core.identity import normalize_email
from core.security import Passwords
from core.tables import Membership, Organization, Tenant, TenantDomain, User
from core.tenancy import normalize_host

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class ManifestError(ValueError):
    """A manifest is malformed: names the file, the key and the reason."""


class MemberSpec(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    role: str


class OrganizationSpec(msgspec.Struct, forbid_unknown_fields=True):
    slug: str
    name: str
    members: list[MemberSpec] = []
    demo: bool = True
    settings: dict[str, Any] = {}


class UserSpec(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    name: str = ""
    password: str | None = None
    tenant_admin: bool = False


class BrandingSpec(msgspec.Struct, forbid_unknown_fields=True):
    product_name: str | None = None
    primary_color: str | None = None
    accent_color: str | None = None
    logo: str | None = None
    support_email: str | None = None
    support_url: str | None = None
    sender_name: str | None = None
    sender_email: str | None = None
    legal_name: str | None = None
    legal_address: str | None = None
    tax_id: str | None = None


class TenantManifest(msgspec.Struct, forbid_unknown_fields=True):
    slug: str
    name: str
    domains: list[str]
    theme: str = "default"
    plugins: list[str] | None = None
    branding: BrandingSpec = msgspec.field(default_factory=BrandingSpec)
    settings: dict[str, Any] = {}
    users: list[UserSpec] = []
    organizations: list[OrganizationSpec] = []


@dataclass
class ApplyReport:
    """What applying a manifest changed (empty when nothing did)."""

    tenant: str
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    demo_organizations: list[uuid.UUID] = field(default_factory=list)


def parse_manifest(path: Path, known_themes: set[str] | None = None) -> TenantManifest:
    """Read and validate one manifest; ``ManifestError`` says file, key and reason."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None
    try:
        manifest = msgspec.convert(raw, TenantManifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"{path}: {exc}") from None

    def fail(key: str, reason: str) -> None:
        raise ManifestError(f"{path}: `{key}`: {reason}")

    if not SLUG.match(manifest.slug):
        fail("slug", "use lower-case letters, digits and dashes")
    if not manifest.domains:
        fail("domains", "list at least one hostname")
    for i, domain in enumerate(manifest.domains):
        if normalize_host(domain) != domain.lower().rstrip("."):
            fail(f"domains[{i}]", f"{domain!r} is not a valid hostname")
    if known_themes is not None and manifest.theme not in known_themes:
        fail("theme", f"no theme {manifest.theme!r} in themes/ (have: {', '.join(sorted(known_themes))})")
    for key in ("primary_color", "accent_color"):
        value = getattr(manifest.branding, key)
        if value is not None and not HEX.match(value):
            fail(f"branding.{key}", f"{value!r} is not a colour like #1a2b3c")
    if manifest.branding.logo:
        logo = path.parent / manifest.branding.logo
        if not logo.is_file():
            fail("branding.logo", f"file {logo} does not exist")
        if logo.suffix.lower() not in {".svg", ".png"}:
            fail("branding.logo", "use an .svg or .png file")
    emails = {normalize_email(u.email) for u in manifest.users}
    for i, org in enumerate(manifest.organizations):
        if not SLUG.match(org.slug):
            fail(f"organizations[{i}].slug", "use lower-case letters, digits and dashes")
        for j, member in enumerate(org.members):
            if member.role not in ROLES:
                fail(f"organizations[{i}].members[{j}].role", f"{member.role!r} is not one of {', '.join(ROLES)}")
            if normalize_email(member.email) not in emails:
                fail(f"organizations[{i}].members[{j}].email", f"{member.email} is not listed under [[users]]")
        if org.members and not any(m.role == "owner" for m in org.members):
            fail(f"organizations[{i}].members", "an organization needs at least one owner")
    return manifest


def _branding_dict(manifest: TenantManifest) -> dict[str, Any]:
    values = msgspec.structs.asdict(manifest.branding)
    values.pop("logo")
    return {k: v for k, v in values.items() if v is not None}


def _owned_by_console(row: dict[str, Any] | None) -> set[str]:
    return set(load_json(row.get("console_owned")) or []) if row else set()


_ABSENT = object()


def _setting_at(settings: dict[str, Any], path: str) -> Any:
    """The value at ``settings.<section>`` or ``settings.<section>.<key>``; ``_ABSENT`` when there is none."""
    section, _, key = path.removeprefix("settings.").partition(".")
    value = settings.get(section, _ABSENT)
    if not key or value is _ABSENT:
        return value
    return value.get(key, _ABSENT) if isinstance(value, dict) else _ABSENT


def _console_kept(wanted: dict[str, Any], current: dict[str, Any], owned: set[str], logo_differs: bool) -> list[str]:
    """What the manifest would change but the console changed last: reported as kept."""
    kept = [k for k in ("theme", "branding", "plugins") if k in owned and current[k] != wanted[k]]
    kept += ["logo"] if "logo" in owned and logo_differs else []
    settings = current["settings"] or {}
    kept += [p for p in sorted(owned) if p.startswith("settings.")
             and _setting_at(wanted["settings"], p) != _setting_at(settings, p)]
    return kept


def _keep_console_settings(wanted: dict[str, Any], current: dict[str, Any], owned: set[str]) -> dict[str, Any]:
    """The manifest's settings with the keys (or whole sections) the console changed left as they are."""
    merged = {section: dict(value) if isinstance(value, dict) else value for section, value in wanted.items()}
    for path in sorted(p for p in owned if p.startswith("settings.")):
        section, _, key = path.removeprefix("settings.").partition(".")
        if key and isinstance(merged.get(section, {}), dict):
            table = merged.setdefault(section, {})
            value = _setting_at(current, path)
            if value is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = value
            if not table and section not in wanted:
                merged.pop(section)
            continue
        value = current.get(section, _ABSENT)  # a whole section (older records, or the manifest's isn't a table)
        if value is _ABSENT:
            merged.pop(section, None)
        else:
            merged[section] = dict(value) if isinstance(value, dict) else value
    return merged


async def apply_manifest(manifest: TenantManifest, base_dir: Path, passwords: Passwords, *,
                         reset_console: bool = False) -> ApplyReport:
    """Create or update the tenant of a manifest in one transaction, keeping console changes (see above)."""
    report = ApplyReport(manifest.slug)
    note = report.changes.append
    now = utcnow()
    async with atomic():
        row = await Tenant.select().where(Tenant.slug == manifest.slug).first()
        logo, logo_type = None, None
        if manifest.branding.logo:
            logo_path = base_dir / manifest.branding.logo
            logo = logo_path.read_bytes()
            logo_type = "image/svg+xml" if logo_path.suffix.lower() == ".svg" else "image/png"
        wanted = {"name": manifest.name, "theme": manifest.theme, "branding": _branding_dict(manifest),
                  "plugins": manifest.plugins, "settings": manifest.settings}
        owned = set() if reset_console else _owned_by_console(row)
        if row is None:
            tenant_id = uuid.uuid4()
            await Tenant.insert(Tenant(id=tenant_id, slug=manifest.slug, logo=logo, logo_type=logo_type,
                                       version=1, created_at=now, updated_at=now, status="active", **wanted))
            note(f"created tenant {manifest.slug}")
        else:
            tenant_id = row["id"]
            current = {k: load_json(row[k]) if k in {"branding", "plugins", "settings"} else row[k] for k in wanted}
            current_logo = bytes(row["logo"]) if row["logo"] else None
            report.kept.extend(_console_kept(wanted, current, owned, logo != current_logo))
            wanted["settings"] = _keep_console_settings(wanted["settings"], current["settings"] or {}, owned)
            wanted.update({k: current[k] for k in ("theme", "branding", "plugins") if k in owned})
            changed = [k for k in wanted if current[k] != wanted[k]]
            updates: dict[Any, Any] = {getattr(Tenant, k): wanted[k] for k in changed}
            if "logo" not in owned and logo != current_logo:
                changed.append("logo")
                updates.update({Tenant.logo: logo, Tenant.logo_type: logo_type})
            if reset_console and _owned_by_console(row):
                changed.append("console changes")
                updates[Tenant.console_owned] = []
            if changed:
                updates.update({Tenant.version: row["version"] + 1, Tenant.updated_at: now})
                await Tenant.update(updates).where(Tenant.id == tenant_id)
                note(f"updated tenant {manifest.slug}: {', '.join(changed)}")

        await _apply_domains(manifest, tenant_id, note, report,
                             keep_console=not reset_console, keep_primary="domains.primary" in owned)
        user_ids = await _apply_users(manifest, tenant_id, passwords, note)
        for org in manifest.organizations:
            org_id = await _apply_organization(org, tenant_id, user_ids, note)
            if org.demo:
                report.demo_organizations.append(org_id)
    return report


async def _apply_domains(manifest: TenantManifest, tenant_id: uuid.UUID, note: Any, report: ApplyReport, *,
                         keep_console: bool, keep_primary: bool) -> None:
    """The manifest's domains, its first one primary; domains added (or a primary chosen) in the console stay."""
    wanted = [d.lower().rstrip(".") for d in manifest.domains]
    taken = await TenantDomain.select(TenantDomain.hostname).where(
        TenantDomain.hostname.is_in(wanted), TenantDomain.tenant != tenant_id)
    if taken:
        raise ManifestError(f"{manifest.slug}: `domains`: {taken[0]['hostname']} already belongs to another tenant")
    existing = {r["hostname"]: r for r in await TenantDomain.select().where(TenantDomain.tenant == tenant_id)}
    for index, host in enumerate(wanted):
        primary = index == 0
        if host not in existing:
            await TenantDomain.insert(TenantDomain(id=uuid.uuid4(), tenant=tenant_id, hostname=host,
                                                   is_primary=primary and not keep_primary, verified=True,
                                                   created_at=utcnow()))
            note(f"added domain {host}")
        elif existing[host]["is_primary"] != primary and not keep_primary:
            await TenantDomain.update({TenantDomain.is_primary: primary}).where(
                TenantDomain.id == existing[host]["id"])
            note(f"{'made' if primary else 'unmade'} {host} primary")
    for host, domain in existing.items():
        if host in wanted:
            continue
        if keep_console and domain["source"] == "console":
            report.kept.append(f"domain {host}")
        else:
            await TenantDomain.delete().where(TenantDomain.id == domain["id"])
            note(f"removed domain {host}")


async def _apply_users(manifest: TenantManifest, tenant_id: uuid.UUID, passwords: Passwords,
                       note: Any) -> dict[str, uuid.UUID]:
    ids = {}
    for spec in manifest.users:
        email = normalize_email(spec.email)
        row = await User.select().where(User.tenant == tenant_id, User.email == email).first()
        if row is None:
            user_id = uuid.uuid4()
            await User.insert(User(
                id=user_id, tenant=tenant_id, email=email, name=spec.name,
                password_hash=passwords.hash(spec.password) if spec.password else None,
                is_tenant_admin=spec.tenant_admin, created_at=utcnow(),
            ))
            note(f"created user {email}")
        else:
            user_id = row["id"]
            if row["name"] != spec.name or row["is_tenant_admin"] != spec.tenant_admin:
                await User.update({User.name: spec.name, User.is_tenant_admin: spec.tenant_admin}).where(
                    User.id == user_id)
                note(f"updated user {email}")
        ids[email] = user_id
    return ids


async def _apply_organization(spec: OrganizationSpec, tenant_id: uuid.UUID, user_ids: dict[str, uuid.UUID],
                              note: Any) -> uuid.UUID:
    row = await Organization.select().where(Organization.tenant == tenant_id, Organization.slug == spec.slug).first()
    if row is None:
        org_id = uuid.uuid4()
        await Organization.insert(Organization(id=org_id, tenant=tenant_id, slug=spec.slug, name=spec.name,
                                               created_at=utcnow()))
        note(f"created organization {spec.slug}")
    else:
        org_id = row["id"]
        if row["name"] != spec.name:
            await Organization.update({Organization.name: spec.name}).where(Organization.id == org_id)
            note(f"renamed organization {spec.slug}")
    members = {r["user"]: r for r in await Membership.select().where(Membership.organization == org_id)}
    for member in spec.members:
        user_id = user_ids[normalize_email(member.email)]
        if user_id not in members:
            await Membership.insert(Membership(id=uuid.uuid4(), tenant=tenant_id, organization=org_id, user=user_id,
                                               role=member.role, created_at=utcnow()))
            note(f"added {member.email} to {spec.slug} as {member.role}")
        elif members[user_id]["role"] != member.role:
            await Membership.update({Membership.role: member.role}).where(Membership.id == members[user_id]["id"])
            note(f"made {member.email} {member.role} of {spec.slug}")
    return org_id


def manifest_files(path: Path) -> list[Path]:
    """``path`` itself or the ``*.toml`` files of a folder, sorted."""
    return [path] if path.is_file() else sorted(path.glob("*.toml"))
